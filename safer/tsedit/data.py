"""Series data for the editing model: fixed-length windows with a mask, and their normalisation.

Three sources are supported:

- ``cohort``: the vitals of a cohort table (:data:`VITALS`), one series per ICU stay on the
  4-hour grid. Missing values are forward-filled within the stay (as a chart reads: a value
  holds until the next measurement) and ``charted`` records which cells were really measured
  (the first available cell of a window counts as measured: it carries a value from before the
  window); values still missing (before the first measurement) are masked. The stay's
  covariates (:data:`COVARIATES`: age, sex, weight, ventilation; forward-filled, NaN where
  unknown) come along per step, and ``groups`` holds the stay of every window. Stays are short
  (about 9 steps on average), so each stay is **padded** to the window at its end and the
  padding is masked: a stay never shares a window with another patient. Stays longer than the
  window give several windows (stride ``window // 2``, plus one ending at the stay's last step).
  With ``complete=True`` only full windows (no padding, every cell available) are cut, at the
  given stride: the fixed-length, gap-free windows a generator without masks needs.
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

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from safer.errors import SaferError

__all__ = [
    "VITALS",
    "COVARIATES",
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
COVARIATES = ["age", "gender", "Weight_kg", "mechvent"]
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
        1 where a value is available (measured, or carried forward), 0 where missing or padding.
    channels : list of str
        Channel names, one per last-axis entry.
    charted : ndarray of shape (n_windows, window, n_channels), optional
        1 where the value was measured at that step (not carried forward); ``None`` means every
        available cell was measured.
    covariates : ndarray of shape (n_windows, window, n_covariates), optional
        Known covariates per step (static ones repeated), NaN where unknown or padding.
    covariate_names : list of str
        Names of the covariates.
    groups : ndarray of shape (n_windows,), optional
        The unit each window comes from (a stay); validation splits never cut a group.

    Examples
    --------
    >>> values = np.arange(24.0).reshape(3, 4, 2)  # 3 windows of 4 steps, 2 channels
    >>> mask = np.ones_like(values); mask[0, 0, 1] = 0  # one missing value
    >>> data = SeriesData(values, mask, ["HR", "SpO2"], groups=np.array([7, 7, 8]))
    >>> len(data), data.window, int(data.observed_mask().sum())
    (3, 4, 23)
    >>> data.subset(data.groups == 8).values[0, 0].tolist()
    [16.0, 17.0]
    """

    values: np.ndarray
    mask: np.ndarray
    channels: list[str]
    charted: np.ndarray | None = None
    covariates: np.ndarray | None = None
    covariate_names: list[str] = field(default_factory=list)
    groups: np.ndarray | None = None

    @property
    def window(self) -> int:
        return int(self.values.shape[1])

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def observed_mask(self) -> np.ndarray:
        """1 where a value was measured (``charted``, or every available cell without it)."""
        return self.mask if self.charted is None else self.mask * self.charted

    def subset(self, index) -> SeriesData:
        """The windows at ``index`` (an index array or boolean mask)."""

        def take(a):
            return None if a is None else a[index]

        return SeriesData(self.values[index], self.mask[index], list(self.channels),
                          take(self.charted), take(self.covariates),
                          list(self.covariate_names), take(self.groups))  # fmt: skip


@dataclass
class Normalizer:
    """Per-channel affine normalisation ``z = (x - mean) / std``, fitted on observed values.

    Examples
    --------
    >>> x = np.array([[[1.0], [3.0], [99.0]]])
    >>> mask = np.array([[[1.0], [1.0], [0.0]]])  # the 99 is padding, not a value
    >>> norm = Normalizer.fit(SeriesData(x, mask, ["x"]))
    >>> norm.mean.tolist(), norm.std.tolist(), norm.transform(x[0, :2, 0:1]).ravel().tolist()
    ([2.0], [1.0], [-1.0, 1.0])
    """

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


def cohort_windows(
    cohort: pd.DataFrame,
    window: int = 48,
    channels: list[str] | None = None,
    covariates: list[str] | None = None,
    *,
    complete: bool = False,
    stride: int | None = None,
) -> SeriesData:
    """Cut a cohort table's vitals into masked windows (one or more per stay).

    Parameters
    ----------
    cohort : pandas.DataFrame
        A cohort table (see :mod:`safer.cohorts.schema`).
    window : int
        Window length in 4-hour steps; shorter stays are padded at the end and masked.
    channels : list of str, optional
        Feature columns to model; default :data:`VITALS`.
    covariates : list of str, optional
        Known per-step covariates to condition on; default the :data:`COVARIATES` the table
        has (pass ``[]`` for none).
    complete : bool
        Only full windows with every cell available (no padding, no value missing before its
        first measurement), every ``stride`` steps of every stay.
    stride : int, optional
        Step between window starts within a stay (default ``window // 2``).

    Examples
    --------
    >>> from safer.cohorts import simulate_cohort
    >>> data = cohort_windows(simulate_cohort(40, seed=0, progress=False), window=8)
    >>> data.values.shape[1:], data.covariate_names
    ((8, 5), ['age', 'gender', 'Weight_kg', 'mechvent'])
    """
    channels = list(channels or VITALS)
    if covariates is None:
        covariates = [c for c in COVARIATES if c in cohort.columns and c not in channels]
    covariates = list(covariates)
    missing = [c for c in channels + covariates + ["stay_id", "step"] if c not in cohort.columns]
    if missing:
        raise TseditDataError(
            f"cohort is missing columns {missing}; see safer.cohorts.schema.FEATURES"
        )
    if window < 2:
        raise TseditDataError(f"window must be at least 2 steps, got {window}")
    stride = max(1, int(stride or window // 2))
    df = cohort.sort_values(["stay_id", "step"])
    by_stay = df.groupby("stay_id", sort=False)
    filled = by_stay[channels].ffill()
    raw = df[channels].to_numpy(dtype=float)
    cov_all = by_stay[covariates].ffill().to_numpy(dtype=float) if covariates else None
    vals, masks, charted, covs, groups = [], [], [], [], []
    for stay, idx in by_stay.indices.items():
        block = filled.iloc[idx].to_numpy(dtype=float)
        measured = ~np.isnan(raw[idx])
        for lo, hi in _windows_of(len(block), window, stride, complete):
            part = block[lo:hi]
            if complete and np.isnan(part).any():
                continue
            v = np.zeros((window, len(channels)))
            m = np.zeros_like(v)
            m[: hi - lo] = ~np.isnan(part)
            v[: hi - lo] = np.nan_to_num(part)
            ch = np.zeros_like(v)
            ch[: hi - lo] = measured[lo:hi]
            first = np.argmax(m, axis=0)  # the window's first available cell of each channel
            ch[first, np.arange(len(channels))] = 1.0
            vals.append(v * m)
            masks.append(m)
            charted.append(ch * m)
            groups.append(stay)
            if cov_all is not None:
                cv = np.full((window, len(covariates)), np.nan)
                cv[: hi - lo] = cov_all[idx][lo:hi]
                covs.append(cv)
    if not vals:
        raise TseditDataError(
            f"no window of {window} steps in this cohort"
            + (" with every vital available; lower --window" if complete else "")
        )
    return SeriesData(np.stack(vals), np.stack(masks), channels, np.stack(charted),
                      np.stack(covs) if covs else None, covariates, np.asarray(groups))  # fmt: skip


def _windows_of(n: int, window: int, stride: int, complete: bool) -> list[tuple[int, int]]:
    if n <= window:
        return [(0, n)] if (n == window or not complete) else []
    starts = list(range(0, n - window + 1, stride))
    if not complete and starts[-1] != n - window:
        starts.append(n - window)
    return [(s, s + window) for s in starts]


def _public_series(name: str) -> np.ndarray:
    import statsmodels.api as sm

    if name == "co2":
        s = sm.datasets.co2.load_pandas().data["co2"].interpolate(limit_direction="both")
    elif name == "sunspots":
        s = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"]
    else:
        raise TseditDataError(f"unknown series {name!r}; use one of {list(PUBLIC_SERIES)}")
    return s.to_numpy(dtype=float)


def public_windows(name: str, window: int = 48, stride: int | None = None) -> SeriesData:
    """Overlapping windows of statsmodels' ``co2`` (weekly) or ``sunspots`` (yearly) series,
    every ``stride`` steps (default 1 for sunspots, ``window // 8`` for co2)."""
    x = _public_series(name)
    if window < 2 or window > len(x):
        raise TseditDataError(f"window must be in 2..{len(x)} for {name}, got {window}")
    if stride is None:
        stride = 1 if name == "sunspots" else max(1, window // 8)
    stride = max(1, int(stride))
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


def read_series_csv(
    path: str | Path, channels: list[str], window: int | None, extra: list[str] = ()
) -> pd.DataFrame:
    """Read a series CSV: one column per channel (named as at training), one row per time step.

    ``window`` caps the number of rows (None: any); the ``extra`` columns (covariates) are kept
    when the file has all of them.
    """
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
    if not 1 <= len(df) <= (window or len(df)):
        raise TseditDataError(
            f"{path}: has {len(df)} rows; the model edits series of 1..{window} steps "
            "(split longer series or train with a larger --window)"
        )
    keep = channels + (list(extra) if extra and set(extra) <= set(df.columns) else [])
    try:
        return df[keep].apply(pd.to_numeric, errors="raise").astype(float)
    except ValueError as exc:
        raise TseditDataError(f"{path}: channel columns must be numeric ({exc})") from exc


def write_series_csv(series: pd.DataFrame, path: str | Path) -> Path:
    """Write an edited series in the same layout as :func:`read_series_csv` reads."""
    from safer._atomic import atomic_file

    path = Path(path)
    with atomic_file(path) as tmp:
        series.to_csv(tmp, index=False)
    return path
