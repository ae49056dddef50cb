"""Small array helpers shared by the models of :mod:`safer.models` (SAFER and the baselines)."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pandas as pd

__all__ = ["CLIP", "ids_hash", "nan_stat", "stratified_pick"]

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
