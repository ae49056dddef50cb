"""Statistical evidence: the promises hold over 100 random calibration/test splits.

Data: one pool of 20,000 synthetic decisions (``_synth``: a mis-specified, over-confident
softmax model over a random linear truth). Each repetition draws a calibration split and a
disjoint test split at random from the pool.
"""

from __future__ import annotations

import numpy as np
import pytest

from safer.conformal import ConformalSelector, PredictionSets, RiskControl
from tests.conformal._synth import synth_decisions

N_SPLITS = 100
ALPHA = 0.1
C = 0.9  # 'uncertain' = the model gave the clinicians' action < 10 % probability


@pytest.fixture(scope="module")
def pool():
    return synth_decisions(20_000, seed=2024)


def _split(rng, n_pool, n_cal, n_test):
    perm = rng.permutation(n_pool)
    return perm[:n_cal], perm[n_cal : n_cal + n_test], perm[n_cal + n_test :]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lac", "aps", "raps"])
def test_mean_coverage_within_target_band(pool, method):
    proba, y, _, _ = pool
    rng = np.random.default_rng(1)
    coverage = []
    for s in range(N_SPLITS):
        cal, _, _ = _split(rng, len(y), 1000, 0)
        test = np.setdiff1d(np.arange(len(y)), cal)  # all 19,000 others: little test noise
        sets = PredictionSets(method, ALPHA, random_state=s).conformalize(proba[cal], y[cal])
        coverage.append(sets.predict_set(proba[test])[np.arange(len(test)), y[test]].mean())
    mean = float(np.mean(coverage))
    se = float(np.std(coverage)) / np.sqrt(N_SPLITS)
    print(f"{method}: mean coverage {mean:.4f} (SE {se:.4f}) over {N_SPLITS} splits")
    # Split conformal's expected coverage is ceil((n+1)(1-alpha))/(n+1) = 0.9001 here, so the
    # mean of finitely many splits lands below 1 - alpha about half the time by chance alone:
    # the lower edge allows 3 standard errors of that mean (~0.003); the upper edge is +0.03.
    assert 1 - ALPHA - 3 * se <= mean <= 1 - ALPHA + 0.03


@pytest.mark.slow
def test_selection_fdr_controlled(pool):
    # Tolerance: the mean of 100 realised FDPs has a standard error of sd(FDP)/10; with FDPs
    # in [0, 1] and FDR <= alpha, sd(FDP) <= sqrt(alpha(1-alpha)) = 0.3, so 3 SE = 0.09 bounds
    # the chance excess; we allow alpha + 3 * (observed sd)/10, at most 0.09.
    # Test splits of 1000 decisions: BH's FDR is per batch.
    proba, y, Z, kappa = pool
    rng = np.random.default_rng(2)
    fdp, n_selected = [], []
    for _ in range(N_SPLITS):
        cal, test, rest = _split(rng, len(y), 1000, 1000)
        train = rest[:1000]  # ridge fitted on a split disjoint from calibration
        sel = ConformalSelector(ALPHA, c=C).fit(Z[train], kappa[train])
        chosen = sel.conformalize(Z[cal], kappa[cal]).select(Z[test])
        truth = kappa[test][chosen]  # TRUE kappa, never the ridge prediction
        fdp.append(float((truth >= sel.c_).mean()) if chosen.any() else 0.0)
        n_selected.append(int(chosen.sum()))
    fdr = float(np.mean(fdp))
    tol = min(0.09, 3 * float(np.std(fdp)) / np.sqrt(N_SPLITS))
    print(f"selection: realised FDR {fdr:.4f} (tol {tol:.4f}), mean selected {np.mean(n_selected)}")
    assert np.mean(n_selected) > 2  # the procedure has power: it does select decisions
    assert fdr <= ALPHA + tol


@pytest.mark.slow
def test_ltt_guarantee_holds_in_1_minus_delta_of_splits(pool):
    # The promise concerns the population error rate of issued recommendations; the ~18,000
    # decisions outside each calibration split estimate it (standard error < 0.01).
    proba, y, _, _ = pool
    alpha, delta = 0.3, 0.1
    top, correct = proba.max(axis=1), proba.argmax(axis=1) == y
    rng = np.random.default_rng(3)
    held, issued = [], []
    for _ in range(N_SPLITS):
        cal, _, _ = _split(rng, len(y), 1000, 0)
        rest = np.setdiff1d(np.arange(len(y)), cal)
        lam = RiskControl(alpha, delta).conformalize(proba[cal], y[cal]).threshold_
        mask = top[rest] >= lam
        issued.append(mask.mean())
        held.append(True if not mask.any() else (1 - correct[rest][mask].mean()) <= alpha)
    fraction = float(np.mean(held))
    print(f"ltt: guarantee held in {fraction:.2f} of splits; mean issued {np.mean(issued):.3f}")
    assert np.mean(issued) > 0.05
    assert fraction >= 1 - delta
