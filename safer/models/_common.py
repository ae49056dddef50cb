"""Small array helpers shared by the models of :mod:`safer.models` (SAFER and the baselines)."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

__all__ = ["CLIP", "as_datetime", "as_float", "ids_hash", "nan_stat", "stratified_pick"]

CLIP = 5.0  # standardised inputs are clipped to +-CLIP


def nan_stat(fn, x: np.ndarray, fill: float) -> np.ndarray:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: filled below
        s = fn(x, axis=0) if len(x) else np.full(x.shape[1], fill)
    s = np.where(np.isfinite(s), s, fill)
    if fill == 1.0:
        s = np.where(s > 1e-8, s, 1.0)
    return s.astype(np.float32)


def stratified_pick(died: pd.Series, fraction: float, rng: np.random.Generator) -> np.ndarray:
    picked = []
    for _, ids in died.groupby(died):
        stays = rng.permutation(ids.index.to_numpy())
        k = int(round(fraction * len(stays)))
        k = min(max(k, 1), len(stays) - 1) if len(stays) >= 2 else 0
        picked.append(stays[:k])
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)


def ids_hash(ids: np.ndarray) -> str:
    return hashlib.sha256(np.sort(np.asarray(ids, dtype=np.int64)).tobytes()).hexdigest()


# A decision reads a stay's few rows, where a pandas conversion call costs more than the data:
# these two skip the call when the column already has the type (same values either way).
def as_float(column: pd.Series) -> np.ndarray:
    """``pd.to_numeric(column, errors="coerce")`` as a float64 array (NaN: not a number).

    >>> as_float(pd.Series(["1", "x"])).tolist(), as_float(pd.Series([2, 3])).tolist()
    ([1.0, nan], [2.0, 3.0])
    """
    if not ptypes.is_numeric_dtype(column.dtype):
        column = pd.to_numeric(column, errors="coerce")
    return column.to_numpy(dtype=float)


def as_datetime(column: pd.Series) -> np.ndarray:
    """``pd.to_datetime(column)`` as an array.

    >>> as_datetime(pd.Series(["2024-01-01 04:00"])).dtype.kind
    'M'
    """
    if not ptypes.is_datetime64_any_dtype(column.dtype):
        column = pd.to_datetime(column)
    return column.to_numpy()
