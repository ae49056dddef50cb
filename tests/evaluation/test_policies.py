from __future__ import annotations

import numpy as np
import pytest

from safer.cohorts import load_mdp, model_columns
from safer.errors import SaferError
from safer.evaluation.policies import (
    GatedPolicy,
    ModelPolicy,
    clinician_mode_policy,
    clinician_policy,
    make_policy,
    value_iteration,
)
from tests.evaluation._standin import TopProbabilityGate


def test_make_policy_builds_every_state_policy_and_lists_names_on_error():
    for spec in ("clinician", "clinician-mode", "random", "optimal"):
        assert make_policy(spec).name == spec
    with pytest.raises(SaferError, match="known policies: clinician, clinician-mode"):
        make_policy("greedy")
    with pytest.raises(SaferError, match="known policies"):
        make_policy("gated:only-a-dir")


def test_state_policies_read_the_true_state_and_refuse_rows_without_it(small_cohort):
    first = small_cohort[small_cohort.step == 0]
    mode = clinician_mode_policy()
    expected = load_mdp().expert_policy[first["true_state"].to_numpy()].argmax(axis=1)
    assert mode.needs_true_state
    np.testing.assert_array_equal(mode.act_batch(first), expected)
    with pytest.raises(SaferError, match="true_state"):
        mode.act_batch(first[model_columns(first)])
    assert not make_policy("random").needs_true_state


def test_act_uses_the_latest_row_of_the_history(small_cohort):
    stay = small_cohort[small_cohort.stay_id == small_cohort.stay_id.iloc[0]]
    mode = clinician_mode_policy()
    last_state = stay.sort_values("step")["true_state"].iloc[-1]
    assert mode.act(stay) == load_mdp().expert_policy[last_state].argmax()
    with pytest.raises(SaferError, match="one stay"):
        mode.act(small_cohort.head(50))


def test_sampled_clinician_policy_follows_its_probabilities_and_needs_a_seed(small_cohort):
    rows = small_cohort[small_cohort.step == 0]
    rows = rows[rows.true_state == rows.true_state.mode().iloc[0]]
    policy = clinician_policy()
    with pytest.raises(SaferError, match="rng"):
        policy.act_batch(rows)
    big = rows.loc[rows.index.repeat(400 // len(rows) + 1)].copy()
    big["stay_id"] = np.arange(len(big))
    acts = policy.act_batch(big, np.random.default_rng(0))
    probs = policy.matrix[int(rows.true_state.iloc[0])]
    assert set(acts) <= set(np.flatnonzero(probs > 0))
    same = policy.act_batch(big, np.random.default_rng(0))
    np.testing.assert_array_equal(acts, same)


def test_value_iteration_beats_every_action_and_reaches_the_reference():
    mdp = load_mdp()
    values, q = value_iteration(mdp)
    assert np.all(values[:713] >= q[:713].max(axis=1) - 1e-9)
    assert 1 - mdp.initial @ values == pytest.approx(0.125, abs=0.001)


def test_model_policy_sees_no_truth_and_takes_the_argmax(small_cohort, cloned_model):
    policy = ModelPolicy(cloned_model)
    acts = policy.act_batch(small_cohort)  # the stand-in raises if it sees true_* columns
    last = small_cohort.sort_values(["stay_id", "step"]).groupby("stay_id").tail(1)
    np.testing.assert_array_equal(
        acts,
        cloned_model.predict_proba(last.drop(columns=["true_state", "true_sofa"])).argmax(axis=1),
    )
    assert not policy.needs_true_state
    probs = policy.probabilities(small_cohort)
    assert probs.shape == (len(small_cohort), 25)
    assert np.all(probs.sum(axis=1) == 1)


def test_gated_policy_defers_to_the_clinician_where_the_gate_abstains(small_cohort, cloned_model):
    first = small_cohort[small_cohort.step == 0]
    gate = TopProbabilityGate(threshold=0.5)
    policy = GatedPolicy(cloned_model, gate)
    decision = policy.decide(first, np.random.default_rng(0))
    proba = cloned_model.predict_proba(first[model_columns(first)])
    abstain = proba.max(axis=1) < 0.5
    assert 0 < abstain.sum() < len(first)  # the threshold splits this cohort
    np.testing.assert_array_equal(decision.deferred, abstain)
    np.testing.assert_array_equal(decision.actions[~abstain], proba[~abstain].argmax(axis=1))
    clin = clinician_policy().matrix[first["true_state"].to_numpy()[abstain]]
    assert np.all(clin[np.arange(abstain.sum()), decision.actions[abstain]] > 0)
    np.testing.assert_array_equal(policy.deferred_rows(first), abstain)


def test_model_spec_on_a_folder_without_a_model_says_how_to_make_one(tmp_path):
    with pytest.raises(SaferError, match="safer train"):
        make_policy(f"model:{tmp_path}")
    with pytest.raises(SaferError, match="safer train"):
        make_policy(f"gated:{tmp_path}:{tmp_path / 'gate.json'}")
