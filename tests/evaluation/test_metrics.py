"""Recommendation metrics: standard definitions, checked by hand and by property."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from safer.errors import SaferError
from safer.evaluation.metrics import evaluate_predictions, rank_of_true, recommendation_metrics


def _proba(rng, n):
    p = rng.random((n, 25)) ** 3
    return p / p.sum(1, keepdims=True)


def test_hand_computed_ranks_hr_mrr_accuracy():
    proba = np.full((4, 25), 0.01)
    # true action ranked 1st, 2nd, 3rd and 5th
    for i, r in enumerate([1, 2, 3, 5]):
        proba[i, :r] = np.linspace(0.5, 0.3, r)
    proba /= proba.sum(1, keepdims=True)
    actions = np.array([0, 1, 2, 4])
    np.testing.assert_array_equal(rank_of_true(proba, actions), [1, 2, 3, 5])
    m = recommendation_metrics(proba, actions)
    assert m["accuracy"] == pytest.approx(0.25)
    assert m["hr_at_3"] == pytest.approx(0.75)
    # the miss counts as 0 over ALL four decisions, not averaged over hits only
    assert m["mrr_at_3"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 0) / 4)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), seed=st.integers(0, 10_000))
def test_mrr_never_exceeds_hr(n, seed):
    rng = np.random.default_rng(seed)
    proba, actions = _proba(rng, n), rng.integers(0, 25, n)
    m = recommendation_metrics(proba, actions)
    assert 0.0 <= m["mrr_at_3"] <= m["hr_at_3"] <= 1.0
    assert m["accuracy"] <= m["hr_at_3"]
    assert 0.0 <= m["ece"] <= 1.0


def test_auc_and_log_loss_match_sklearn():
    rng = np.random.default_rng(0)
    proba, actions = _proba(rng, 400), rng.integers(0, 25, 400)
    actions[:3] = 24  # keep class 24 present
    m = recommendation_metrics(proba, actions)
    onehot = np.eye(25)[actions]
    present = [c for c in range(25) if 0 < onehot[:, c].sum() < 400]
    macro = np.mean([roc_auc_score(onehot[:, c], proba[:, c]) for c in present])
    assert m["macro_auc"] == pytest.approx(macro)
    assert m["micro_auc"] == pytest.approx(roc_auc_score(onehot.ravel(), proba.ravel()))
    assert m["log_loss"] == pytest.approx(sk_log_loss(actions, proba, labels=list(range(25))))


def test_perfect_and_calibrated_predictions():
    actions = np.arange(25).repeat(4)
    perfect = np.eye(25)[actions]
    m = recommendation_metrics(perfect, actions)
    assert m["macro_auc"] == 1.0 and m["accuracy"] == 1.0 and m["ece"] == pytest.approx(0.0)
    uniform = np.full((100, 25), 1 / 25)
    assert recommendation_metrics(uniform, actions)["macro_auc"] == pytest.approx(0.5)


def test_overconfident_model_has_large_ece():
    rng = np.random.default_rng(1)
    actions = rng.integers(0, 25, 500)
    confident = np.full((500, 25), 0.001)
    confident[:, 0] = 1 - 24 * 0.001  # always sure of action 0, right ~4% of the time
    assert recommendation_metrics(confident, actions)["ece"] > 0.8


def test_survivors_and_all_split_by_outcome():
    rng = np.random.default_rng(2)
    proba, actions = _proba(rng, 50), rng.integers(0, 25, 50)
    died = (np.arange(50) % 5 == 0).astype(int)
    out = evaluate_predictions(proba, actions, died)
    assert out["all"]["n"] == 50 and out["survivors"]["n"] == 40
    direct = recommendation_metrics(proba[died == 0], actions[died == 0])
    assert out["survivors"] == direct
    assert set(out["all"]) >= {"macro_auc", "micro_auc", "hr_at_3", "mrr_at_3", "accuracy",
                               "ece", "log_loss", "n"}  # fmt: skip


def test_undefined_metrics_are_none_not_numbers():
    out = evaluate_predictions(np.full((2, 25), 0.04), np.array([1, 1]), np.array([1, 1]))
    assert out["survivors"]["n"] == 0 and out["survivors"]["macro_auc"] is None
    assert out["all"]["macro_auc"] is None  # only one class present


@pytest.mark.parametrize(
    "proba, actions",
    [(np.ones((3, 24)) / 24, np.zeros(3, int)), (np.ones((3, 25)) / 25, np.array([0, 1, 25]))],
)
def test_bad_inputs_raise_safer_error(proba, actions):
    with pytest.raises(SaferError):
        recommendation_metrics(proba, actions)
