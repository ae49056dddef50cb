"""Train a variant on the train split and score it on another split: the library behind
``safer train``, ``safer evaluate``, ``safer demo`` and the benchmarks.

It lives in ``safer.evaluation`` (downstream of ``safer.models``) because it scores models with
:mod:`safer.evaluation.metrics`; ``safer.models`` never imports evaluation code.

Examples
--------
>>> from safer.cohorts import simulate_cohort, split_stays
>>> from safer.evaluation.experiments import train_and_evaluate
>>> cohort = simulate_cohort(n_stays=60, seed=0, progress=False)
>>> result = train_and_evaluate(cohort, split_stays(cohort, seed=0), variant="safer-n",
...                             progress=False, epochs=1)  # doctest: +SKIP
>>> sorted(result.metrics)  # doctest: +SKIP
['all', 'survivors']
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from safer.cohorts.schema import validate
from safer.cohorts.splits import (
    DEFAULT_FRACTIONS,
    SPLIT_NAMES,
    SplitLeakError,
    StaySplits,
    refuse_overlap,
    split_stays,
)
from safer.errors import SaferError
from safer.evaluation.metrics import evaluate_predictions
from safer.models.registry import make_model

if TYPE_CHECKING:
    import torch

__all__ = [
    "SplitLeakError",
    "TrainResult",
    "model_splits",
    "score_split",
    "train_and_evaluate",
    "train_on_split",
]


@dataclass
class TrainResult:
    """A fitted model, its test metrics and how long fitting took."""

    model: Any
    metrics: dict[str, dict[str, Any]]
    fit_seconds: float
    split: str


def train_on_split(
    cohort: pd.DataFrame,
    splits: StaySplits,
    *,
    variant: str = "safer",
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
    **config_overrides: Any,
):
    """Fit ``variant`` on the train split only (on ``device``, default the CPU); the model
    records the split (seed and stay fractions) it used."""
    validate(cohort)
    model = make_model(variant, seed=seed, **config_overrides)
    return model.fit(splits.subset(cohort, "train"), progress=progress, device=device,
                     split_seed=int(splits.seed), split_fractions=splits.fractions)  # fmt: skip


def model_splits(model, cohort: pd.DataFrame, source: str = "the model") -> StaySplits:
    """The stay-level splits of ``cohort`` that ``model`` was trained with: its recorded split
    seed and stay fractions (the defaults for models saved before fractions were recorded).
    ``source`` names the model in the error raised when it records no split."""
    seed = getattr(model, "split_seed_", None)
    if seed is None:
        raise SaferError(
            f"{source} does not record the split it was trained on; retrain it with "
            "`safer train`, which saves the split seed and fractions"
        )
    fractions = getattr(model, "split_fractions_", None) or DEFAULT_FRACTIONS
    tr, cal, te = fractions
    return split_stays(cohort, train=tr, calibration=cal, test=te, seed=int(seed))


def score_split(model, cohort: pd.DataFrame, splits: StaySplits, split: str) -> dict[str, Any]:
    """Metrics of ``model`` on one split, refusing held-out splits that overlap training.

    Returns ``{"survivors": {...}, "all": {...}, "split": name, "stays": n}``.
    """
    if split not in SPLIT_NAMES:
        raise SaferError(f"unknown split {split!r}; choose one of {list(SPLIT_NAMES)}")
    part = splits.subset(cohort, split)
    if part.empty:
        raise SaferError(f"the {split} split of this cohort has no stays; use a larger cohort")
    if split != "train":
        refuse_overlap(part["stay_id"].unique(), getattr(model, "train_stays_", None),
                       f"stays of the {split} split", "pass the cohort the model was trained "
                       "with, or score --split train knowingly")  # fmt: skip
    proba = model.predict_proba(part)
    metrics = evaluate_predictions(proba, part["action"].to_numpy(), part["died"].to_numpy())
    return {**metrics, "split": split, "stays": int(part["stay_id"].nunique())}


def train_and_evaluate(
    cohort: pd.DataFrame,
    splits: StaySplits | None = None,
    *,
    variant: str = "safer",
    seed: int = 0,
    split: str = "test",
    progress: bool = True,
    **config_overrides: Any,
) -> TrainResult:
    """Fit a variant on the train split, then score it on ``split`` (default test).

    Parameters
    ----------
    cohort : DataFrame
        A validated cohort table.
    splits : StaySplits, optional
        Stay-level splits; default ``split_stays(cohort, seed=0)``.
    variant, seed : str, int
        Passed to :func:`safer.models.make_model`.
    split : {"test", "calibration", "train"}
        Split to report metrics on.
    **config_overrides
        SaferConfig fields, e.g. ``epochs=20``.
    """
    splits = splits if splits is not None else split_stays(cohort, seed=0)
    start = time.perf_counter()
    model = train_on_split(
        cohort, splits, variant=variant, seed=seed, progress=progress, **config_overrides
    )
    seconds = time.perf_counter() - start
    return TrainResult(model, score_split(model, cohort, splits, split), seconds, split)
