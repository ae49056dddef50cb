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

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from safer.errors import SaferError

__all__ = [
    "DEFAULT_FRACTIONS",
    "SPLIT_NAMES",
    "SplitLeakError",
    "StaySplits",
    "refuse_overlap",
    "parse_fractions",
    "split_stays",
]

SPLIT_NAMES = ("train", "calibration", "test")
#: Stay fractions of the train / calibration / test splits unless a user chooses others.
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)


class SplitLeakError(SaferError):
    """Stays used as held-out data (calibration, test) were used to train the model."""


def refuse_overlap(held_out_stays, trained_on, what: str, fix: str) -> None:
    """Raise :class:`SplitLeakError` if any of ``held_out_stays`` is in ``trained_on`` (stay
    ids; nothing is checked when ``trained_on`` is None). ``what`` names the held-out data in
    the message, ``fix`` says what to do instead.

    >>> refuse_overlap([4, 5], np.array([1, 2, 3]), "calibration stays", "")
    >>> refuse_overlap([3, 4], np.array([1, 2, 3]), "calibration stays", "use other stays")
    Traceback (most recent call last):
    ...
    safer.cohorts.splits.SplitLeakError: 1 calibration stays were used to train this model ...
    """
    if trained_on is None:
        return
    overlap = np.intersect1d(np.asarray(held_out_stays), np.asarray(trained_on))
    if len(overlap):
        raise SplitLeakError(
            f"{len(overlap)} {what} were used to train this model (e.g. {overlap[:3].tolist()})"
            f"; {fix}"
        )


@dataclass(frozen=True)
class StaySplits:
    """Sorted arrays of stay ids per split, with the seed and the (normalised) stay fractions
    that produced them.

    Examples
    --------
    >>> from safer.cohorts import simulate_cohort
    >>> splits = split_stays(simulate_cohort(n_stays=20, seed=0, progress=False), seed=1)
    >>> splits.sizes()
    {'train': 12, 'calibration': 4, 'test': 4}
    >>> splits.fractions
    (0.6, 0.2, 0.2)
    """

    train: np.ndarray
    calibration: np.ndarray
    test: np.ndarray
    seed: int
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS

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
    fractions = _normalised((train, calibration, test))
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
    return StaySplits(train=arrays[0], calibration=arrays[1], test=arrays[2], seed=seed,
                      fractions=tuple(float(f) for f in fractions))  # fmt: skip


def _normalised(fractions) -> np.ndarray:
    out = np.array(fractions, dtype=float)
    if out.shape != (3,) or np.any(~np.isfinite(out)) or np.any(out <= 0):
        raise SaferError(
            f"split fractions are three positive numbers (train, calibration, test), got "
            f"{list(fractions)}"
        )
    return out / out.sum()


def parse_fractions(text: str) -> tuple[float, float, float]:
    """Train / calibration / test stay fractions from ``"50/40/10"`` or ``"0.5,0.4,0.1"``
    (normalised to sum to 1).

    >>> parse_fractions("50/40/10")
    (0.5, 0.4, 0.1)
    >>> parse_fractions("3,1,1")
    (0.6, 0.2, 0.2)
    """
    parts = [p for p in re.split(r"[/,:\s]+", str(text).strip()) if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise SaferError(
            f"split fractions {text!r}: give three numbers, e.g. 60/20/20 or 0.5,0.4,0.1"
        ) from None
    return tuple(round(float(f), 12) for f in _normalised(values))
