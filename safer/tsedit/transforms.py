"""Per-channel transforms between data units and the diffusion model's space.

Charted vitals are not Gaussian: heart rate is charted in whole beats, SpO2 is capped at 100 %
(and piles up there), lactate has a heavy right tail, urine output is never negative. A
:class:`ChannelTransforms` is fitted on the training windows and learns, per channel:

- **charting precision** ``quantum``: the largest of 1, 0.1, ..., 1e-4 on whose grid at least
  98 % of the observed values lie (0 = continuous). Training *dequantises* (adds uniform noise of
  one quantum, so the model sees a continuous density) and generated values are rounded back;
- **bounds** ``low`` / ``high``: a bound is declared where the data pile up on it (at least
  0.5 % of the values equal the minimum / maximum, e.g. SpO2 = 100), and ``low = 0`` for a
  channel that is never negative; generated values are clipped to them. Values outside the
  observed range stay possible otherwise (a trending series continues its trend);
- **the map to model space**: a monotone piecewise-linear map through ``knots`` pairs
  ``(x, z)``, extended linearly beyond its end knots. Channels that are skewed (|skewness| > 1),
  heavy-tailed (excess kurtosis > 3) or bounded get a *quantile-normal* map (z = the standard
  normal quantile of the channel's empirical distribution, as in TabDDPM's preprocessing); the
  others, and every channel of a model saved before this module existed, get the affine map
  ``z = (x - mean) / sd``.
- **no compression beyond the affine map**: a plain quantile-normal map squeezes the sparse
  stretches of the data (a far tail, the gap between two modes) into short stretches of model
  units — on the simulated cohort, lactate 4.2 -> 9.3 mmol/L took 0.3 model units while
  2.2 -> 4.2 took 1.7. The model's noise, its errors and an edit's SDEdit perturbation have
  one size in model units everywhere, so a charted 3.5 mmol/L crossed that gap at the
  slightest push and became 9-13 mmol/L (carried forward as a plateau). So every segment of a
  quantile map is made at least as wide in model units as the affine map makes it
  (``dz/dx >= 1 / (max_compression * sd)``, default ``max_compression`` 1): dense stretches
  keep their (wider) quantile spacing, sparse ones open up to the affine spacing, the median
  stays at 0. The end segments get the same floor, so beyond the training range a value moves
  at most ``sd`` per model unit, as under the affine map, instead of at the slope of the last
  0.1 % of the data.

See :class:`ChannelTransforms` for an example.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

__all__ = ["ChannelTransforms", "detect_quantum"]

N_KNOTS = 65
Z_RANGE = 3.2  # knots at the data quantiles p = Phi(-3.2) .. Phi(3.2) (0.0007 .. 0.9993)
_ON_GRID = 0.98  # share of values that must lie on a grid for it to be the charting precision
_PILE_UP = 0.005  # share of values at the minimum / maximum that declares a bound


def detect_quantum(values: np.ndarray) -> float:
    """The charting precision of ``values``: 1, 0.1, ..., 1e-4, or 0 when none fits.

    >>> detect_quantum(np.array([2.1, 2.3, 11.0])), detect_quantum(np.array([0.123456]))
    (0.1, 0.0)
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0
    for decimals in range(5):
        q = 10.0**-decimals
        r = v / q
        if np.mean(np.abs(r - np.round(r)) < 1e-6 * np.maximum(1.0, np.abs(r))) >= _ON_GRID:
            return q
    return 0.0


@dataclass
class ChannelTransforms:
    """Fitted per-channel maps (see the module docstring).

    Attributes
    ----------
    x_knots, z_knots : ndarray of shape (n_channels, n_knots)
        Strictly increasing knots of each channel's map, data units and model units.
    quantum, low, high : ndarray of shape (n_channels,)
        Charting precision (0 = continuous) and bounds (+-inf = none).
    kinds : list of str
        ``"quantile"`` or ``"affine"`` per channel.

    Examples
    --------
    >>> import numpy as np
    >>> from safer.tsedit.data import SeriesData
    >>> rng = np.random.default_rng(0)
    >>> x = np.round(np.clip(rng.normal(97, 2, (200, 8, 1)), None, 100))
    >>> t = ChannelTransforms.fit(SeriesData(x, np.ones_like(x), ["SpO2"]))
    >>> t.quantum.tolist(), t.high.tolist(), t.kinds
    ([1.0], [100.0], ['quantile'])
    >>> z = t.forward(x[:2])
    >>> bool(np.allclose(t.inverse(z), x[:2]))
    True
    >>> float(t.finish(np.array([[[101.4]]]))[0, 0, 0])
    100.0
    """

    x_knots: np.ndarray
    z_knots: np.ndarray
    quantum: np.ndarray
    low: np.ndarray
    high: np.ndarray
    kinds: list[str]

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def affine(cls, mean: np.ndarray, std: np.ndarray) -> ChannelTransforms:
        """``z = (x - mean) / std`` with no rounding or bounds (models saved before this)."""
        mean, std = np.asarray(mean, float), np.asarray(std, float)
        z = np.linspace(-Z_RANGE, Z_RANGE, N_KNOTS)
        c = len(mean)
        return cls(
            x_knots=mean[:, None] + std[:, None] * z[None],
            z_knots=np.tile(z, (c, 1)),
            quantum=np.zeros(c),
            low=np.full(c, -np.inf),
            high=np.full(c, np.inf),
            kinds=["affine"] * c,
        )

    @classmethod
    def fit(
        cls, data, kind: str = "auto", seed: int = 0, max_compression: float | None = 1.0
    ) -> ChannelTransforms:
        """Learn precision, bounds and map of every channel from the observed cells of
        ``data`` (a :class:`~safer.tsedit.data.SeriesData`; charted cells where it says which).

        ``kind``: ``"auto"`` (quantile for skewed, heavy-tailed or bounded channels, affine
        otherwise), ``"quantile"`` or ``"affine"`` for every channel. ``max_compression``:
        how many times more than the affine map a quantile map may squeeze a stretch of the
        data into model units (see the module docstring); ``None`` = no limit, the plain
        quantile-normal map of models fitted before the limit existed.
        """
        if kind not in ("auto", "quantile", "affine"):
            raise ValueError(f"transform must be 'auto', 'quantile' or 'affine', got {kind!r}")
        if max_compression is not None and not max_compression > 0:
            raise ValueError(f"max_compression must be positive or None, got {max_compression}")
        rng = np.random.default_rng(seed)
        observed = data.observed_mask().astype(bool)
        n_ch = data.values.shape[-1]
        x_knots, z_knots, kinds = [], [], []
        quantum, low, high = np.zeros(n_ch), np.full(n_ch, -np.inf), np.full(n_ch, np.inf)
        z_grid = np.linspace(-Z_RANGE, Z_RANGE, N_KNOTS)
        for c in range(n_ch):
            v = data.values[..., c][observed[..., c]].astype(float)
            if v.size < 2:
                v = np.array([0.0, 1.0]) if v.size == 0 else np.r_[v, v + 1.0]
            quantum[c] = detect_quantum(v)
            lo, hi = v.min(), v.max()
            if np.mean(v == lo) >= _PILE_UP:
                low[c] = lo
            elif lo >= 0:
                low[c] = 0.0
            if np.mean(v == hi) >= _PILE_UP:
                high[c] = hi
            skewed = abs(stats.skew(v)) > 1.0 or stats.kurtosis(v) > 3.0
            bounded = np.isfinite(high[c]) or (np.isfinite(low[c]) and np.mean(v == lo) >= _PILE_UP)
            use_quantile = kind == "quantile" or (kind == "auto" and (skewed or bounded))
            if use_quantile and np.unique(v).size >= 3:
                jitter = (rng.random(v.size) - 0.5) * quantum[c]
                xk = np.quantile(v + jitter, stats.norm.cdf(z_grid))
                xk = _strictly_increasing(xk, max(quantum[c], np.std(v), 1e-6) * 1e-6)
                x_knots.append(xk)
                if max_compression is not None:
                    z_knots.append(_limit_compression(xk, z_grid, max_compression * np.std(v)))
                else:
                    z_knots.append(z_grid.copy())
                kinds.append("quantile")
            else:
                mean, std = v.mean(), v.std()
                std = std if std > 1e-8 else 1.0
                x_knots.append(mean + std * z_grid)
                z_knots.append(z_grid.copy())
                kinds.append("affine")
        return cls(np.stack(x_knots), np.stack(z_knots), quantum, low, high, kinds)

    # -- persistence --------------------------------------------------------------------------
    def to_meta(self) -> dict:
        return {
            "x_knots": self.x_knots.tolist(),
            "z_knots": self.z_knots.tolist(),
            "quantum": self.quantum.tolist(),
            "low": [None if not np.isfinite(v) else float(v) for v in self.low],
            "high": [None if not np.isfinite(v) else float(v) for v in self.high],
            "kinds": list(self.kinds),
        }

    @classmethod
    def from_meta(cls, meta: dict) -> ChannelTransforms:
        return cls(
            x_knots=np.array(meta["x_knots"], dtype=float),
            z_knots=np.array(meta["z_knots"], dtype=float),
            quantum=np.array(meta["quantum"], dtype=float),
            low=np.array([-np.inf if v is None else v for v in meta["low"]], dtype=float),
            high=np.array([np.inf if v is None else v for v in meta["high"]], dtype=float),
            kinds=list(meta["kinds"]),
        )

    # -- maps ---------------------------------------------------------------------------------
    def forward(self, x):
        """Data units -> model units; ``x`` (..., n_channels), NumPy or torch."""
        return self._map(x, self.x_knots, self.z_knots)

    def inverse(self, z):
        """Model units -> data units (no rounding or clipping; see :meth:`finish`)."""
        return self._map(z, self.z_knots, self.x_knots)

    def finish(self, x: np.ndarray) -> np.ndarray:
        """Clip data-unit values to the bounds and round them to the charting precision."""
        x = np.clip(np.asarray(x, dtype=float), self.low, self.high)
        q = np.where(self.quantum > 0, self.quantum, 1.0)
        return np.where(self.quantum > 0, np.round(x / q) * q, x)

    def dequantize(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """``x`` plus uniform noise of one charting quantum per cell (training only)."""
        q = torch.tensor(self.quantum, dtype=x.dtype)
        return x + (torch.rand(x.shape, generator=gen, dtype=x.dtype) - 0.5) * q

    def _map(self, x, src: np.ndarray, dst: np.ndarray):
        if isinstance(x, torch.Tensor):
            src_t, dst_t = torch.tensor(src, dtype=x.dtype), torch.tensor(dst, dtype=x.dtype)
            return _interp_torch(x, src_t, dst_t)
        xt = torch.tensor(np.array(x, dtype=float))
        out = _interp_torch(xt, torch.tensor(src), torch.tensor(dst))
        return out.numpy()


def _limit_compression(xk: np.ndarray, zk: np.ndarray, sd: float) -> np.ndarray:
    """Model-unit knots of a quantile map whose slope dz/dx is nowhere below ``1 / sd``.

    Every segment ``[x_i, x_i+1]`` is at least ``(x_i+1 - x_i) / sd`` wide in model units;
    the knot at the median stays where it was (see the module docstring for why).
    """
    sd = sd if sd > 1e-8 else 1.0
    dz = np.maximum(np.diff(zk), np.diff(xk) / sd)
    z = np.r_[0.0, np.cumsum(dz)]
    mid = len(zk) // 2
    return z - z[mid] + zk[mid]


def _strictly_increasing(x: np.ndarray, eps: float) -> np.ndarray:
    out = np.array(x, dtype=float)
    for i in range(1, len(out)):
        if out[i] <= out[i - 1]:
            out[i] = out[i - 1] + eps
    return out


def _interp_torch(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Per-channel piecewise-linear interpolation with linear extrapolation.

    ``x`` (..., C); ``xp``, ``fp`` (C, K) with ``xp`` strictly increasing along K.
    """
    shape = x.shape
    c = shape[-1]
    flat = x.reshape(-1, c).T.contiguous()  # (C, N)
    idx = torch.searchsorted(xp, flat).clamp(1, xp.shape[1] - 1)
    x0, x1 = xp.gather(1, idx - 1), xp.gather(1, idx)
    f0, f1 = fp.gather(1, idx - 1), fp.gather(1, idx)
    out = f0 + (f1 - f0) / (x1 - x0) * (flat - x0)
    return out.T.reshape(shape)
