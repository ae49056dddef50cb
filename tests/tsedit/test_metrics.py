import numpy as np
import pytest

from safer.tsedit.metrics import (
    NextStepGRU,
    context_fid,
    discriminative_score,
    discriminative_score_gru,
    predictive_score,
    realism_distance,
    smoothness,
)


def test_discriminative_score_separates_only_different_sets():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(60, 12, 1))
    same = rng.normal(size=(60, 12, 1))
    shifted = same + 3.0
    assert discriminative_score(real, same) < 0.2
    assert discriminative_score(real, shifted) > 0.4


def test_context_fid_zero_for_identical_and_grows_with_shift():
    emb = np.random.default_rng(1).normal(size=(200, 4))
    assert context_fid(emb, emb) == pytest.approx(0.0, abs=1e-6)
    assert context_fid(emb, emb + 1.0) == pytest.approx(4.0, rel=0.05)


def test_smoothness_flags_spikes():
    x = np.linspace(0, 1, 12)[:, None]
    spiky = x.copy()
    spiky[6, 0] += 5.0
    std = np.ones(1)
    assert smoothness(x, [(6, 0)], std) == pytest.approx(0.0, abs=1e-12)
    assert smoothness(spiky, [(6, 0)], std) > 1.0


def test_gru_discriminator_tells_only_different_sets_apart():
    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.normal(size=(400, 10, 2)), axis=1)
    other = np.cumsum(rng.normal(size=(400, 10, 2)), axis=1)
    noise = rng.normal(size=(400, 10, 2)) * walk.std()
    assert discriminative_score_gru(walk, other, iterations=1000) < 0.12
    assert discriminative_score_gru(walk, noise, iterations=1000) > 0.35


def test_predictive_score_prefers_data_with_the_real_dynamics():
    rng = np.random.default_rng(4)
    ar = np.zeros((300, 12, 1))
    for t in range(1, 12):
        ar[:, t] = 0.9 * ar[:, t - 1] + rng.normal(size=(300, 1))
    shuffled = rng.permuted(ar, axis=1)  # same values, no dynamics
    test = ar[:100]
    good = predictive_score(ar[100:], test, iterations=400)
    bad = predictive_score(shuffled[100:], test, iterations=400)
    assert good < bad
    emb = NextStepGRU(ar, iterations=50).fit(ar).embed(test)
    assert emb.shape == (100, 16)


def test_realism_distance_is_mask_aware():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(300, 8, 2)), rng.normal(size=(300, 8, 2))
    scale = np.ones(2)
    mask = np.ones_like(b)
    mask[:, 5:] = 0
    corrupted = b.copy()
    corrupted[:, 5:] = 100.0  # only where the mask hides it
    assert realism_distance(a, corrupted, scale, None, mask) == pytest.approx(
        realism_distance(a, b, scale, None, mask)
    )
    assert realism_distance(a, b, scale) < 0.1 < realism_distance(a, b * 2, scale)
