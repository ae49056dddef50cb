"""Learn-then-test via MAPIE and conformal selection (p-values, BH)."""

from __future__ import annotations

import numpy as np
import pytest

from safer.conformal import ConformalSelector, RiskControl, benjamini_hochberg, conformal_pvalues
from safer.errors import NotFittedError
from tests.conformal._synth import synth_decisions


@pytest.fixture(scope="module")
def data():
    return synth_decisions(2000, seed=5)


def test_ltt_decisions_match_mapie_controller(data):
    proba, y, _, _ = data
    rc = RiskControl(alpha=0.45, delta=0.1).conformalize(proba[:1000], y[:1000])
    assert rc.controlled_
    ours = rc.predict(proba[1000:])
    theirs = rc.controller_.predict(proba[1000:])
    np.testing.assert_array_equal(np.isnan(theirs), ours == -1)
    np.testing.assert_array_equal(theirs[ours >= 0], ours[ours >= 0])


def test_ltt_threshold_is_the_least_abstaining_valid_one(data):
    proba, y, _, _ = data
    rc = RiskControl(alpha=0.45, delta=0.1).conformalize(proba[:1000], y[:1000])
    assert rc.threshold_ == rc.valid_thresholds_.min()


def test_ltt_unreachable_alpha_abstains_everywhere(data):
    proba, y, _, _ = data
    rc = RiskControl(alpha=0.001, delta=0.01).conformalize(proba[:200], y[:200])
    assert not rc.controlled_
    assert (rc.predict(proba[200:400]) == -1).all()


def test_ltt_predict_before_conformalize():
    with pytest.raises(NotFittedError, match="call conformalize first"):
        RiskControl().predict(np.full((2, 25), 0.04))


def test_pvalues_count_null_calibration_scores():
    # 4 calibration decisions, 2 of them null with kappa_hat 1 and 2
    p = conformal_pvalues(np.array([0.5, 1.0, 1.5, 3.0]), np.array([1.0, 2.0]), 4)
    assert p.tolist() == [0.2, 0.4, 0.4, 0.6]


def test_bh_matches_step_up_definition():
    p = np.array([0.01, 0.04, 0.03, 0.5, 0.02])
    # sorted 0.01 .02 .03 .04 .5 vs 0.05*k/5 = .01 .02 .03 .04 .05 -> first four rejected
    assert benjamini_hochberg(p, 0.05).tolist() == [True, True, True, False, True]
    assert not benjamini_hochberg(np.array([0.9, 0.8]), 0.05).any()


def test_selection_selects_low_uncertainty_and_uses_default_c(data):
    proba, y, Z, kappa = data
    sel = ConformalSelector(alpha=0.2).fit(Z[:700], kappa[:700])
    assert sel.c_ == pytest.approx(np.median(kappa[:700]))
    sel.conformalize(Z[700:1300], kappa[700:1300])
    chosen = sel.select(Z[1300:])
    assert chosen.any()
    assert kappa[1300:][chosen].mean() < kappa[1300:][~chosen].mean()


def test_selection_embedding_width_mismatch(data):
    _, _, Z, kappa = data
    sel = ConformalSelector(alpha=0.2).fit(Z[:500], kappa[:500])
    with pytest.raises(Exception, match="same model"):
        sel.predict_kappa(Z[:5, :3])
