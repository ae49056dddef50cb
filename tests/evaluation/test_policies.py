from __future__ import annotations

import numpy as np
import pytest

from safer.cohorts import load_mdp, model_columns
from safer.conformal import GateMismatchError
from safer.errors import SaferError
from safer.evaluation.policies import (
    DeferringPolicy,
    GatedPolicy,
    LoggedActionPolicy,
    ModelPolicy,
    Policy,
    act,
    act_batch,
    clinician_mode_policy,
    clinician_policy,
    make_policy,
    value_iteration,
)


def test_make_policy_builds_every_state_policy_and_lists_names_on_error():
    for spec in ("clinician", "clinician-mode", "random", "optimal", "logged"):
        assert make_policy(spec).name == spec
        assert isinstance(make_policy(spec), Policy)
    with pytest.raises(SaferError, match="known policies: clinician, clinician-mode"):
        make_policy("greedy")
    with pytest.raises(SaferError, match="known policies"):
        make_policy("gated:only-a-dir")


def test_state_policies_read_the_true_state_and_refuse_rows_without_it(small_cohort):
    first = small_cohort[small_cohort.step == 0]
    mode = clinician_mode_policy()
    expected = load_mdp().expert_policy[first["true_state"].to_numpy()].argmax(axis=1)
    assert mode.needs_true_state
    np.testing.assert_array_equal(act_batch(mode, first), expected)
    with pytest.raises(SaferError, match="true_state"):
        act_batch(mode, first[model_columns(first)])
    assert not make_policy("random").needs_true_state


def test_act_uses_the_latest_row_of_the_history(small_cohort):
    stay = small_cohort[small_cohort.stay_id == small_cohort.stay_id.iloc[0]]
    mode = clinician_mode_policy()
    last_state = stay.sort_values("step")["true_state"].iloc[-1]
    assert act(mode, stay) == load_mdp().expert_policy[last_state].argmax()
    with pytest.raises(SaferError, match="one stay"):
        act(mode, small_cohort.head(50))


def test_sampled_clinician_policy_follows_its_probabilities_and_needs_a_seed(small_cohort):
    rows = small_cohort[small_cohort.step == 0]
    rows = rows[rows.true_state == rows.true_state.mode().iloc[0]]
    policy = clinician_policy()
    with pytest.raises(SaferError, match="rng"):
        act_batch(policy, rows)
    big = rows.loc[rows.index.repeat(400 // len(rows) + 1)].copy()
    big["stay_id"] = np.arange(len(big))
    acts = act_batch(policy, big, np.random.default_rng(0))
    probs = policy.matrix[int(rows.true_state.iloc[0])]
    assert set(acts) <= set(np.flatnonzero(probs > 0))
    same = act_batch(policy, big, np.random.default_rng(0))
    np.testing.assert_array_equal(acts, same)


def test_value_iteration_beats_every_action_and_reaches_the_reference():
    mdp = load_mdp()
    values, q = value_iteration(mdp)
    assert np.all(values[:713] >= q[:713].max(axis=1) - 1e-9)
    assert 1 - mdp.initial @ values == pytest.approx(0.125, abs=0.001)


def test_model_policy_sees_no_truth_and_takes_the_argmax(small_cohort, cloned_model):
    policy = ModelPolicy(cloned_model)
    acts = act_batch(policy, small_cohort)  # the stand-in raises if it sees true_* columns
    last = small_cohort.sort_values(["stay_id", "step"]).groupby("stay_id").tail(1)
    np.testing.assert_array_equal(
        acts,
        cloned_model.predict_proba(last.drop(columns=["true_state", "true_sofa"])).argmax(axis=1),
    )
    assert not policy.needs_true_state
    probs = policy.probabilities(small_cohort)
    assert probs.shape == (len(small_cohort), 25)
    assert np.all(probs.sum(axis=1) == 1)


def test_gated_policy_defers_to_the_clinician_where_the_gate_abstains(
    small_cohort, cloned_model, cloned_gate
):
    first = small_cohort[small_cohort.step == 0]
    policy = GatedPolicy(cloned_model, cloned_gate)
    assert isinstance(policy, DeferringPolicy) and policy.needs_true_state
    decision = policy.decide(first, np.random.default_rng(0))
    proba = cloned_model.predict_proba(first[model_columns(first)])
    gated = cloned_gate.decide(proba, model_hash=cloned_model.content_hash_).action
    abstain = gated < 0
    assert 0 < abstain.sum() < len(first)  # the calibrated threshold splits this cohort
    np.testing.assert_array_equal(decision.deferred, abstain)
    np.testing.assert_array_equal(decision.actions[~abstain], proba[~abstain].argmax(axis=1))
    clin = clinician_policy().matrix[first["true_state"].to_numpy()[abstain]]
    assert np.all(clin[np.arange(abstain.sum()), decision.actions[abstain]] > 0)
    np.testing.assert_array_equal(policy.deferred_rows(first), abstain)


def test_on_real_data_a_gated_policy_defers_to_the_logged_action(
    small_cohort, cloned_model, cloned_gate
):
    logged = small_cohort.drop(columns=["true_state", "true_sofa"])  # what real EHR looks like
    first = logged[logged.step == 0]
    policy = GatedPolicy(cloned_model, cloned_gate, defer_to=LoggedActionPolicy())
    assert not policy.needs_true_state
    decision = policy.decide(first)
    np.testing.assert_array_equal(
        decision.actions[decision.deferred], first["action"].to_numpy()[decision.deferred]
    )
    probs = policy.probabilities(first)
    rows = np.flatnonzero(decision.deferred)
    assert np.all(probs[rows, first["action"].to_numpy()[rows]] == 1.0)
    with pytest.raises(SaferError, match="charted action"):
        LoggedActionPolicy().decide(first.assign(action=-1))


def test_a_gate_of_another_model_is_refused(small_cohort, cloned_model, cloned_gate):
    from tests.evaluation._standin import ClonedClinician

    other = ClonedClinician().fit(small_cohort.sample(frac=0.5, random_state=1))
    with pytest.raises(GateMismatchError, match="never transfers"):
        GatedPolicy(other, cloned_gate).decide(small_cohort[small_cohort.step == 0])


def test_model_spec_on_a_folder_without_a_model_says_how_to_make_one(tmp_path):
    with pytest.raises(SaferError, match="safer train"):
        make_policy(f"model:{tmp_path}")
    with pytest.raises(SaferError, match="safer train"):
        make_policy(f"gated:{tmp_path}:{tmp_path / 'gate.json'}")
