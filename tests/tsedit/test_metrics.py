import numpy as np
import pytest

from safer.tsedit.metrics import context_fid, discriminative_score, smoothness


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
