import numpy as np
import pytest
import torch

from safer.tsedit import ChannelTransforms, SeriesData
from safer.tsedit.transforms import detect_quantum


def _data(x: np.ndarray) -> SeriesData:
    x = x[:, :, None] if x.ndim == 2 else x
    return SeriesData(x, np.ones_like(x), [f"c{i}" for i in range(x.shape[-1])])


def test_charting_precision_is_read_from_the_data():
    assert detect_quantum(np.array([72.0, 80.0, 101.0])) == 1.0
    assert detect_quantum(np.array([2.1, 0.7, 11.3])) == 0.1
    assert detect_quantum(np.array([315.71, 316.02])) == 0.01
    assert detect_quantum(np.random.default_rng(0).normal(size=50)) == 0.0
    lumpy = np.r_[np.round(np.linspace(1, 9, 99), 1), 3.14159]  # 1 % off the grid: still 0.1
    assert detect_quantum(lumpy) == 0.1


def test_bounds_come_from_pile_ups_and_signs():
    rng = np.random.default_rng(1)
    spo2 = np.minimum(np.round(rng.normal(97, 2, (300, 10))), 100)
    urine = np.abs(rng.normal(400, 200, (300, 10)))
    trend = np.linspace(300, 360, 3000).reshape(300, 10) + rng.normal(0, 1, (300, 10))
    t = ChannelTransforms.fit(_data(np.stack([spo2, urine, trend - 400], -1)))
    assert t.high.tolist() == [100.0, np.inf, np.inf]
    assert t.low[1] == 0.0 and t.low[2] == -np.inf  # never negative / no bound
    assert t.kinds == ["quantile", "affine", "affine"]
    finished = t.finish(np.array([[101.7, -5.0, -200.0]]))
    assert finished.tolist() == [[100.0, 0.0, -200.0]]


def test_quantile_map_gaussianises_a_heavy_tail_and_inverts():
    lactate = np.round(np.exp(np.random.default_rng(2).normal(0.7, 0.6, (400, 12))), 1)
    t = ChannelTransforms.fit(_data(lactate))
    assert t.kinds == ["quantile"] and t.quantum[0] == 0.1
    z = t.forward(lactate[..., None])
    assert abs(np.mean(z)) < 0.1 and np.std(z) == pytest.approx(1.0, abs=0.15)
    np.testing.assert_allclose(t.inverse(z), lactate[..., None], atol=1e-6)
    far = t.forward(np.array([[100.0]]))  # beyond the data: extended linearly, still monotone
    assert far[0, 0] > t.forward(np.array([[lactate.max()]]))[0, 0]
    zt = torch.tensor(z[:5], dtype=torch.float32)  # the torch path agrees with NumPy
    np.testing.assert_allclose(t.inverse(zt).numpy(), t.inverse(z[:5]), rtol=1e-5)


def test_affine_transform_and_round_trip_through_meta():
    t = ChannelTransforms.affine(np.array([5.0, -1.0]), np.array([2.0, 0.5]))
    x = np.array([[[9.0, 0.0], [-20.0, 3.0]]])
    np.testing.assert_allclose(t.forward(x), (x - [5.0, -1.0]) / [2.0, 0.5], atol=1e-12)
    back = ChannelTransforms.from_meta(t.to_meta())
    np.testing.assert_allclose(back.inverse(back.forward(x)), x, atol=1e-9)
    with pytest.raises(ValueError, match="transform must be"):
        ChannelTransforms.fit(_data(np.zeros((4, 4))), kind="log")
