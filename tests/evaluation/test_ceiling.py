"""The oracle ceiling: tabular policies learned from the true states of a logged cohort."""

from __future__ import annotations

import numpy as np
import pytest

from safer.cohorts import load_mdp, simulate_cohort
from safer.errors import SaferError
from safer.evaluation.ceiling import one_step_improvement, oracle_ceiling, transition_counts


def test_counts_hold_every_decision_and_end_in_the_stays_outcome(small_cohort):
    counts = transition_counts(small_cohort)
    assert counts.sum() == len(small_cohort)
    outcomes = small_cohort.groupby("stay_id")["died"].first()
    assert counts[:, :, 713].sum() == outcomes.sum()  # one death transition per deceased stay
    assert counts[:, :, 714].sum() == (1 - outcomes).sum()


def test_one_step_improvement_on_the_true_model_beats_the_clinicians():
    mdp = load_mdp()
    pi = mdp.expert_policy
    improved = one_step_improvement(mdp.transitions, pi, pi > 0)
    assert np.allclose(improved.sum(1), 1.0)
    assert mdp.exact_mortality(improved) < mdp.exact_mortality(pi) - 0.05
    # the policy stays inside the allowed actions
    assert np.all(pi[:713][improved.astype(bool)] > 0)


def test_ceiling_reports_every_policy_with_exact_references(small_cohort):
    result = oracle_ceiling(small_cohort)
    assert result.stays == small_cohort["stay_id"].nunique()
    assert result.decisions == len(small_cohort)
    assert 0 < result.states_seen <= 713
    assert result.mortality["clinicians"] == pytest.approx(0.218, abs=1e-3)
    assert result.mortality["optimal"] == pytest.approx(0.125, abs=1e-3)
    for name in ("imitation", "one-step", "value-iteration"):
        assert result.mortality["optimal"] - 1e-9 <= result.mortality[name] <= 1.0
        assert 0.0 <= result.estimated[name] <= 1.0


def test_a_stricter_support_keeps_the_one_step_policy_closer_to_imitation(small_cohort):
    strict = oracle_ceiling(small_cohort, support=1.0)  # only the most frequent action(s)
    assert strict.mortality["one-step"] == pytest.approx(strict.mortality["imitation"], abs=0.01)


def test_bad_inputs_say_what_is_needed(small_cohort):
    with pytest.raises(SaferError, match="true_state"):
        oracle_ceiling(small_cohort.drop(columns="true_state"))
    with pytest.raises(SaferError, match="support"):
        oracle_ceiling(small_cohort, support=0.0)
    with pytest.raises(SaferError, match="no rows"):
        oracle_ceiling(small_cohort.iloc[:0])


@pytest.mark.slow
def test_more_logged_stays_move_the_one_step_policy_below_the_clinicians():
    small = oracle_ceiling(simulate_cohort(n_stays=300, seed=1, progress=False))
    large = oracle_ceiling(simulate_cohort(n_stays=5000, seed=1, progress=False))
    assert large.mortality["one-step"] < large.mortality["clinicians"] - 0.01
    assert large.mortality["one-step"] < small.mortality["one-step"]
    # value iteration on an estimated model believes itself far better than it is
    assert large.estimated["value-iteration"] < large.mortality["value-iteration"] - 0.05
