"""Prediction sets equal MAPIE's, Mondrian per group, singleton rule, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from mapie.classification import SplitConformalClassifier
from sklearn.linear_model import LogisticRegression

from safer.conformal import CalibrationTooSmallError, ConformalInputError, PredictionSets
from safer.conformal.sets import ProbabilityPassthrough, singleton_decisions
from safer.errors import NotFittedError, SaferError
from tests.conformal._synth import synth_decisions


@pytest.fixture(scope="module")
def data():
    return synth_decisions(1200, seed=3)


@pytest.mark.parametrize("method", ["lac", "aps", "raps"])
def test_sets_equal_mapie_on_a_fitted_sklearn_model(method):
    # MAPIE's own pipeline on a real sklearn classifier vs ours on its saved probabilities.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 6))
    y = (X @ rng.normal(size=(6, 25)) + rng.gumbel(size=(1500, 25))).argmax(axis=1)
    clf = LogisticRegression(max_iter=300).fit(X[:500], y[:500])
    assert list(clf.classes_) == list(range(25))
    mapie = SplitConformalClassifier(
        estimator=clf, confidence_level=0.9, conformity_score=method, prefit=True, random_state=0
    )
    mapie.conformalize(X[500:1000], y[500:1000])
    _, expected = mapie.predict_set(X[1000:])
    ours = PredictionSets(method, alpha=0.1, random_state=0).conformalize(
        clf.predict_proba(X[500:1000]), y[500:1000]
    )
    np.testing.assert_array_equal(ours.predict_set(clf.predict_proba(X[1000:])), expected[:, :, 0])


def test_passthrough_is_a_prefit_classifier():
    clf = ProbabilityPassthrough().fit()
    p = np.eye(25)[[4, 9]]
    assert clf.predict(p).tolist() == [4, 9]
    np.testing.assert_array_equal(clf.predict_proba(p), p)


def test_mondrian_covers_each_group(data):
    proba, y, _, _ = data
    groups = np.where(np.arange(len(y)) % 3 == 0, "ventilated", "not ventilated")
    ps = PredictionSets("lac", alpha=0.2, groups=True).conformalize(
        proba[:800], y[:800], groups_cal=groups[:800]
    )
    sets = ps.predict_set(proba[800:], groups=groups[800:])
    assert set(ps.n_calibration_) == {"ventilated", "not ventilated"}
    # each group gets its own MAPIE quantile; a set equals that group's MAPIE on its own rows
    for g in ("ventilated", "not ventilated"):
        mask = groups[800:] == g
        alone = PredictionSets("lac", alpha=0.2).conformalize(
            proba[:800][groups[:800] == g], y[:800][groups[:800] == g]
        )
        np.testing.assert_array_equal(sets[mask], alone.predict_set(proba[800:][mask]))


def test_unknown_group_at_predict_is_an_error(data):
    proba, y, _, _ = data
    g = np.array(["a", "b"] * 600)
    ps = PredictionSets("lac", 0.2, groups=True).conformalize(proba[:600], y[:600], g[:600])
    with pytest.raises(ConformalInputError, match="not seen at calibration"):
        ps.predict_set(proba[:3], groups=np.array(["a", "c", "b"]))


def test_singleton_rule():
    sets = np.zeros((3, 25), dtype=bool)
    sets[0, 12] = True
    sets[1, [3, 4]] = True
    assert singleton_decisions(sets).tolist() == [12, -1, -1]


def test_predict_before_conformalize_says_what_to_do(data):
    with pytest.raises(NotFittedError, match="call conformalize first"):
        PredictionSets().predict_set(data[0][:5])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p, y: (p * 0.9, y), "sum to 1"),
        (lambda p, y: (np.where(np.arange(25) == 0, np.nan, p), y), "NaN"),
        (lambda p, y: (p[:, :24], y), "shape"),
        (lambda p, y: (p, np.where(np.arange(len(y)) == 0, 25, y)), "outside 0..24"),
        (lambda p, y: (p, y[:-1]), "shape"),
    ],
)
def test_bad_input_is_a_clear_error(data, mutate, message):
    proba, y = mutate(data[0][:300].copy(), data[1][:300].copy())
    with pytest.raises(ConformalInputError, match=message):
        PredictionSets("lac", 0.1).conformalize(proba, y)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.2, 1.5, float("nan")])
def test_alpha_outside_unit_interval(data, alpha):
    with pytest.raises(SaferError, match="between 0 and 1"):
        PredictionSets("lac", alpha).conformalize(data[0][:100], data[1][:100])


def test_too_small_calibration_says_how_many(data):
    with pytest.raises(CalibrationTooSmallError, match="needs at least 99"):
        PredictionSets("lac", 0.01).conformalize(data[0][:50], data[1][:50])


def test_unknown_method_lists_known(data):
    with pytest.raises(ConformalInputError, match=r"\['aps', 'lac', 'raps'\]"):
        PredictionSets("topk", 0.1).conformalize(data[0][:100], data[1][:100])
