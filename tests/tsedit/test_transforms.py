import numpy as np
import pytest
import torch
from scipy import stats

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
    plain = ChannelTransforms.fit(_data(lactate), max_compression=None)
    z = plain.forward(lactate[..., None])
    assert abs(np.mean(z)) < 0.1 and np.std(z) == pytest.approx(1.0, abs=0.15)
    t = ChannelTransforms.fit(_data(lactate))  # the default keeps the tail's spacing open
    assert t.kinds == ["quantile"] and t.quantum[0] == 0.1
    z = t.forward(lactate[..., None])
    assert abs(np.median(z)) < 0.05 and abs(stats.skew(z.ravel())) < 0.6 * stats.skew(
        lactate.ravel()
    )
    np.testing.assert_allclose(np.quantile(z, [0.05, 0.25]), stats.norm.ppf([0.05, 0.25]), atol=0.1)
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
    with pytest.raises(ValueError, match="max_compression must be positive"):
        ChannelTransforms.fit(_data(np.zeros((4, 4))), max_compression=0.0)


def test_quantile_map_never_compresses_data_more_than_the_affine_map():
    # lactate as the simulated cohort charts it: a dense mode around 2 mmol/L and a small
    # cluster of shocked patients at 9-15, with almost nothing in between
    rng = np.random.default_rng(3)
    calm = np.exp(rng.normal(0.7, 0.35, 5000))
    shock = rng.uniform(9.0, 15.0, 150)
    lactate = np.round(rng.permutation(np.r_[calm, shock]).reshape(-1, 10), 1)
    t = ChannelTransforms.fit(_data(lactate))
    assert t.kinds == ["quantile"]
    sd = lactate.std()
    # a step of dz in model units moves a value by at most sd * dz in data units, anywhere,
    # also beyond the training range (the map is extended linearly there)
    x = np.linspace(0.0, 40.0, 4001)[:, None]
    z = t.forward(x)[:, 0]
    assert np.all(np.diff(x[:, 0]) / np.diff(z) <= sd * (1 + 1e-6))
    # so the noise of an edit at strength 0.5 (about one model unit) keeps a charted 3.5 in
    # the calm mode instead of throwing it across the gap into the shock cluster
    z35 = t.forward(np.array([[3.5]]))[0, 0]
    moved = t.inverse(z35 + rng.normal(0.0, 1.0, (4000, 1)))
    assert np.mean(moved >= 8.0) < 0.01
    np.testing.assert_allclose(t.inverse(t.forward(lactate[..., None])), lactate[..., None],
                               atol=1e-6)  # fmt: skip
