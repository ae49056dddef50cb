"""Series data for the editing model: fixed-length windows with a mask, and their normalisation.

Three sources are supported:

- ``cohort``: the vitals of a cohort table (:data:`VITALS`), one series per ICU stay on the
  4-hour grid. Missing values are forward-filled within the stay; values still missing (before
  the first measurement) are masked. Stays are short (about 9 steps on average), so each stay is
  **padded** to the window at its end and the padding is masked: a stay never shares a window with
  another patient. Stays longer than the window give several windows (stride ``window // 2``, plus
  one ending at the stay's last step).
- ``co2`` and ``sunspots``: the series shipped with statsmodels (offline), cut into overlapping
  windows (stride 1 for sunspots, ``window // 8`` for co2). Gaps in co2 are linearly interpolated.

Normalisation statistics (per-channel mean and standard deviation over observed values) are
computed on the training windows and stored with the model.

Examples
--------
>>> data = public_windows("sunspots", window=24)
>>> data.values.shape[1:], data.channels
((24, 1), ['sunspots'])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from safer.errors import SaferError

__all__ = [
    "VITALS",
    "PUBLIC_SERIES",
    "SeriesData",
    "Normalizer",
    "TseditDataError",
    "cohort_windows",
    "public_windows",
    "load_training_data",
    "read_series_csv",
    "write_series_csv",
]

VITALS = ["MeanBP", "HR", "Arterial_lactate", "output_4hourly", "SpO2"]
PUBLIC_SERIES = ("co2", "sunspots")


class TseditDataError(SaferError, ValueError):
    """Series data that cannot be used (wrong channels, too long, unreadable)."""


@dataclass
class SeriesData:
    """Windows of a multivariate series.

    Attributes
    ----------
    values : ndarray of shape (n_windows, window, n_channels)
        Values in the data's own units; 0 where ``mask`` is 0.
    mask : ndarray of shape (n_windows, window, n_channels)
        1 where a value is observed (or forward-filled), 0 where missing or padding.
    channels : list of str
        Channel names, one per last-axis entry.
    """

    values: np.ndarray
    mask: np.ndarray
    channels: list[str]

    @property
    def window(self) -> int:
        return int(self.values.shape[1])

    def __len__(self) -> int:
        return int(self.values.shape[0])


@dataclass
class Normalizer:
    """Per-channel affine normalisation ``z = (x - mean) / std``, fitted on observed values."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, data: SeriesData) -> Normalizer:
        m = data.mask.reshape(-1, data.values.shape[-1]).astype(bool)
        v = data.values.reshape(-1, data.values.shape[-1])
        mean = np.array([v[m[:, c], c].mean() for c in range(v.shape[1])])
        std = np.array([v[m[:, c], c].std() for c in range(v.shape[1])])
        return cls(mean=mean, std=np.where(std > 1e-8, std, 1.0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return z * self.std + self.mean


def _stay_windows(block: np.ndarray, window: int) -> list[tuple[int, int]]:
    n = len(block)
    if n <= window:
        return [(0, n)]
    stride = max(1, window // 2)
    starts = list(range(0, n - window + 1, stride))
    if starts[-1] != n - window:
        starts.append(n - window)
    return [(s, s + window) for s in starts]


def cohort_windows(
    cohort: pd.DataFrame, window: int = 48, channels: list[str] | None = None
) -> SeriesData:
    """Cut a cohort table's vitals into padded, masked windows (one or more per stay).

    Parameters
    ----------
    cohort : pandas.DataFrame
        A cohort table (see :mod:`safer.cohorts.schema`).
    window : int
        Window length in 4-hour steps; shorter stays are padded at the end and masked.
    channels : list of str, optional
        Feature columns to use; default :data:`VITALS`.
    """
    channels = list(channels or VITALS)
    missing = [c for c in channels + ["stay_id", "step"] if c not in cohort.columns]
    if missing:
        raise TseditDataError(
            f"cohort is missing columns {missing}; see safer.cohorts.schema.FEATURES"
        )
    if window < 2:
        raise TseditDataError(f"window must be at least 2 steps, got {window}")
    df = cohort.sort_values(["stay_id", "step"])
    filled = df.groupby("stay_id", sort=False)[channels].ffill()
    vals, masks = [], []
    for _, idx in df.groupby("stay_id", sort=False).indices.items():
        block = filled.iloc[idx].to_numpy(dtype=float)
        for lo, hi in _stay_windows(block, window):
            v = np.zeros((window, len(channels)))
            v[: hi - lo] = block[lo:hi]
            m = np.zeros_like(v)
            m[: hi - lo] = ~np.isnan(block[lo:hi])
            vals.append(np.nan_to_num(v) * m)
            masks.append(m)
    return SeriesData(np.stack(vals), np.stack(masks), channels)


def _public_series(name: str) -> np.ndarray:
    import statsmodels.api as sm

    if name == "co2":
        s = sm.datasets.co2.load_pandas().data["co2"].interpolate(limit_direction="both")
    elif name == "sunspots":
        s = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"]
    else:
        raise TseditDataError(f"unknown series {name!r}; use one of {list(PUBLIC_SERIES)}")
    return s.to_numpy(dtype=float)


def public_windows(name: str, window: int = 48) -> SeriesData:
    """Overlapping windows of statsmodels' ``co2`` (weekly) or ``sunspots`` (yearly) series."""
    x = _public_series(name)
    if window < 2 or window > len(x):
        raise TseditDataError(f"window must be in 2..{len(x)} for {name}, got {window}")
    stride = 1 if name == "sunspots" else max(1, window // 8)
    starts = range(0, len(x) - window + 1, stride)
    values = np.stack([x[s : s + window, None] for s in starts])
    return SeriesData(values, np.ones_like(values), [name])


def load_training_data(spec: str, window: int = 48) -> SeriesData:
    """Parse ``cohort:FILE``, ``co2`` or ``sunspots`` into training windows."""
    if spec in PUBLIC_SERIES:
        return public_windows(spec, window)
    if spec.startswith("cohort:"):
        from safer.cohorts import read_cohort

        return cohort_windows(read_cohort(spec.split(":", 1)[1]), window)
    raise TseditDataError(
        f"unknown data {spec!r}; use cohort:FILE (a cohort table), co2 or sunspots"
    )


def read_series_csv(path: str | Path, channels: list[str], window: int) -> pd.DataFrame:
    """Read a series CSV: one column per channel (named as at training), one row per time step."""
    path = Path(path)
    if not path.is_file():
        raise TseditDataError(f"{path}: no such file; write a CSV with columns {channels}")
    try:
        df = pd.read_csv(path)
    except Exception as exc:  # parser errors have many types
        raise TseditDataError(f"{path}: could not read it as CSV ({exc})") from exc
    missing = [c for c in channels if c not in df.columns]
    if missing:
        raise TseditDataError(
            f"{path}: missing channel columns {missing}; the model was trained on {channels}"
        )
    if not 1 <= len(df) <= window:
        raise TseditDataError(
            f"{path}: has {len(df)} rows; the model edits series of 1..{window} steps "
            "(split longer series or train with a larger --window)"
        )
    try:
        return df[channels].apply(pd.to_numeric, errors="raise").astype(float)
    except ValueError as exc:
        raise TseditDataError(f"{path}: channel columns must be numeric ({exc})") from exc


def write_series_csv(series: pd.DataFrame, path: str | Path) -> Path:
    """Write an edited series in the same layout as :func:`read_series_csv` reads."""
    from safer._atomic import atomic_file

    path = Path(path)
    with atomic_file(path) as tmp:
        series.to_csv(tmp, index=False)
    return path
