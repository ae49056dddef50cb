"""Stay-level (patient-level) train / calibration / test splits, stratified by outcome.

All rows of a stay land in one split, so no patient is seen in training and again in
calibration or test; the calibration split is disjoint from training, as conformal guarantees
require.

Examples
--------
>>> from safer.cohorts import simulate_cohort, split_stays
>>> cohort = simulate_cohort(n_stays=100, seed=0, progress=False)
>>> splits = split_stays(cohort, seed=0)
>>> len(splits.train) + len(splits.calibration) + len(splits.test)
100
>>> bool(splits.subset(cohort, "test")["stay_id"].isin(splits.train).any())
False
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from safer.errors import SaferError

__all__ = ["StaySplits", "split_stays", "SPLIT_NAMES"]

SPLIT_NAMES = ("train", "calibration", "test")


@dataclass(frozen=True)
class StaySplits:
    """Sorted arrays of stay ids per split."""

    train: np.ndarray
    calibration: np.ndarray
    test: np.ndarray
    seed: int

    def __post_init__(self):
        sets = [set(self.train.tolist()), set(self.calibration.tolist()), set(self.test.tolist())]
        if sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2]:
            raise SaferError("a stay appears in more than one split")

    def ids(self, name: str) -> np.ndarray:
        if name not in SPLIT_NAMES:
            raise SaferError(f"unknown split {name!r}; choose one of {list(SPLIT_NAMES)}")
        return getattr(self, name)

    def subset(self, cohort: pd.DataFrame, name: str) -> pd.DataFrame:
        """The rows of ``cohort`` whose stay is in split ``name``."""
        return cohort[cohort["stay_id"].isin(self.ids(name))].reset_index(drop=True)

    def sizes(self) -> dict[str, int]:
        return {name: int(len(self.ids(name))) for name in SPLIT_NAMES}


def split_stays(
    cohort: pd.DataFrame,
    *,
    train: float = 0.6,
    calibration: float = 0.2,
    test: float = 0.2,
    seed: int = 0,
) -> StaySplits:
    """Split stays (not rows) into train / calibration / test, stratified by ``died``.

    Fractions are renormalised to sum to 1; each must be positive.
    """
    fractions = np.array([train, calibration, test], dtype=float)
    if np.any(~np.isfinite(fractions)) or np.any(fractions <= 0):
        raise SaferError(f"split fractions must be positive, got {fractions.tolist()}")
    fractions = fractions / fractions.sum()
    for col in ("stay_id", "died"):
        if col not in cohort.columns:
            raise SaferError(f"cohort has no {col!r} column; validate it first")
    outcome = cohort.groupby("stay_id", sort=True)["died"].first()
    if len(outcome) < 3:
        raise SaferError(f"need at least 3 stays to split, got {len(outcome)}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for _, ids in outcome.groupby(outcome):
        stays = rng.permutation(ids.index.to_numpy())
        cuts = np.round(np.cumsum(fractions)[:2] * len(stays)).astype(int)
        for k, chunk in enumerate(np.split(stays, cuts)):
            parts[k].append(chunk)
    arrays = [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]
    return StaySplits(train=arrays[0], calibration=arrays[1], test=arrays[2], seed=seed)
