"""Drift: is the live population still exchangeable with the calibration data?

A gate's guarantee holds for patients exchangeable with its calibration stays. :func:`drift_test`
checks that on the model's *conformity scores* (``1 - p(the dose the clinicians gave)``, the
LAC score, for any gate): a two-sample **stay-level permutation test** of the mean score,
calibration stays vs live stays, at a stated level.

Why stays, not rows: the steps of one stay are strongly correlated, so a row-level test (a KS
test, or MAPIE's exchangeability tests, which compute scores from ``(X, y)`` with a MAPIE
estimator and treat rows as exchangeable) flags a cohort from the very same population once
it has a few thousand rows. Permuting whole stays between the two groups keeps each stay's
rows together; under the null (calibration and live stays drawn from one population) every
relabelling of stays is equally likely, so the p-value ``(1 + #{permuted >= observed}) / (1 +
n_permutations)`` is valid at any sample size.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> ref, live = rng.uniform(size=400), rng.uniform(size=400) + 0.2
>>> groups = np.repeat(np.arange(100), 4)
>>> r = drift_test(ref, groups, live, groups, level=0.05, seed=0)
>>> r.flagged, r.p_value < 0.05
(True, True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from safer.decisions.core import visible
from safer.errors import SaferError

__all__ = ["DriftResult", "conformity_scores", "drift_test", "drift_check"]


@dataclass(frozen=True)
class DriftResult:
    """The outcome of :func:`drift_test` (all numbers; :meth:`words` for people).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> scores, stays = rng.uniform(size=200), np.repeat(np.arange(50), 4)
    >>> result = drift_test(scores[:100], stays[:100], scores[100:], stays[100:], seed=0)
    >>> result.flagged, result.n_reference_stays, result.n_live_rows
    (False, 25, 100)
    >>> result.words()[:60]
    'Drift check at level 0.05 of live data: no evidence that the'
    """

    level: float
    p_value: float
    flagged: bool
    reference_mean: float
    live_mean: float
    n_reference_stays: int
    n_live_stays: int
    n_reference_rows: int
    n_live_rows: int
    n_permutations: int
    method: str = "stay-level permutation test of the mean conformity score (two-sided)"
    live_source: str = ""  # where the live rows came from (e.g. the file), for the record

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def words(self) -> str:
        """One sentence an auditor reads."""
        verdict = (
            "the live stays are NOT exchangeable with the calibration stays: the gate's "
            "guarantee may not hold for them"
            if self.flagged
            else "no evidence that the live stays differ from the calibration stays"
        )
        source = f" ({self.live_source})" if self.live_source else ""
        return (
            f"Drift check at level {self.level:g} of live data{source}: {verdict} "
            f"(p = {self.p_value:.3g}; mean "
            f"conformity score {self.live_mean:.3f} live vs {self.reference_mean:.3f} "
            f"calibration; {self.n_live_stays} live vs {self.n_reference_stays} calibration "
            f"stays; {self.method}, {self.n_permutations} permutations)."
        )


def conformity_scores(proba: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """``1 - p(action)`` per row: how unusual the clinicians' dose was for the model.

    >>> conformity_scores(np.array([[0.7, 0.3], [0.2, 0.8]]), np.array([0, 0])).round(2)
    array([0.3, 0.8])
    """
    proba = np.asarray(proba, dtype=float)
    actions = np.asarray(actions, dtype=int)
    if proba.ndim != 2 or len(proba) != len(actions):
        raise SaferError("give one row of probabilities per action")
    return 1.0 - proba[np.arange(len(actions)), actions]


def _stay_sums(scores: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.DataFrame({"g": np.asarray(groups), "s": np.asarray(scores, dtype=float)})
    agg = frame.groupby("g", sort=True)["s"].agg(["sum", "size"])
    return agg["sum"].to_numpy(), agg["size"].to_numpy()


def drift_test(
    reference: np.ndarray,
    reference_groups: np.ndarray,
    live: np.ndarray,
    live_groups: np.ndarray,
    *,
    level: float = 0.05,
    n_permutations: int = 2000,
    seed: int = 0,
) -> DriftResult:
    """Stay-level permutation test: are ``live`` scores exchangeable with ``reference``?

    Parameters
    ----------
    reference, live : array (n,)
        Conformity scores (:func:`conformity_scores`) of the calibration rows and the live rows.
    reference_groups, live_groups : array (n,)
        The stay of each row (ids may repeat between the two sets; they are kept apart).
    level : float in (0, 1)
        The test's level: the chance of flagging a live population that is in fact
        exchangeable with the calibration one is at most ``level``.
    n_permutations : int
        Random relabellings of stays.
    seed : int
        Seed of the relabellings.
    """
    if not 0.0 < level < 1.0:
        raise SaferError(f"level must be in (0, 1), got {level}")
    if len(reference) != len(reference_groups) or len(live) != len(live_groups):
        raise SaferError("give one stay id per score")
    ref_sum, ref_n = _stay_sums(reference, reference_groups)
    live_sum, live_n = _stay_sums(live, live_groups)
    if len(ref_sum) < 2 or len(live_sum) < 2:
        raise SaferError(
            f"the drift check needs at least 2 stays on each side (calibration "
            f"{len(ref_sum)}, live {len(live_sum)})"
        )
    sums, sizes = np.concatenate([ref_sum, live_sum]), np.concatenate([ref_n, live_n])
    k = len(ref_sum)

    def stat(order: np.ndarray) -> float:
        a, b = order[:k], order[k:]
        return abs(sums[b].sum() / sizes[b].sum() - sums[a].sum() / sizes[a].sum())

    observed = stat(np.arange(len(sums)))
    rng = np.random.default_rng(seed)
    # all permutations at once: (n_permutations, stays) boolean "is in the reference group"
    perms = np.argsort(rng.random((n_permutations, len(sums))), axis=1)
    in_ref = np.zeros_like(perms, dtype=bool)
    np.put_along_axis(in_ref, perms[:, :k], True, axis=1)
    ref_mean = (in_ref @ sums) / (in_ref @ sizes)
    live_mean = (~in_ref @ sums) / (~in_ref @ sizes)
    exceed = int((np.abs(live_mean - ref_mean) >= observed - 1e-12).sum())
    p = (1 + exceed) / (1 + n_permutations)
    return DriftResult(
        level=float(level), p_value=float(p), flagged=bool(p <= level),
        reference_mean=float(ref_sum.sum() / ref_n.sum()),
        live_mean=float(live_sum.sum() / live_n.sum()),
        n_reference_stays=int(k), n_live_stays=int(len(live_sum)),
        n_reference_rows=int(ref_n.sum()), n_live_rows=int(live_n.sum()),
        n_permutations=int(n_permutations),
    )  # fmt: skip


def drift_check(
    model: Any,
    calibration: pd.DataFrame,
    live: pd.DataFrame,
    live_source: str = "",
    **kwargs: Any,
) -> DriftResult:
    """:func:`drift_test` of a model's conformity scores on its calibration rows vs live rows.

    Both are cohort tables with the dose given (``action``); the model sees only
    :func:`safer.decisions.visible` columns. ``kwargs`` go to :func:`drift_test`.
    """
    for name, rows in (("calibration", calibration), ("live", live)):
        if "action" not in rows:
            raise SaferError(f"the {name} rows need the dose given (column 'action')")
    scores = [
        conformity_scores(model.predict_proba(visible(rows)), rows["action"].to_numpy())
        for rows in (calibration, live)
    ]
    result = drift_test(scores[0], calibration["stay_id"].to_numpy(), scores[1],
                        live["stay_id"].to_numpy(), **kwargs)  # fmt: skip
    return replace(result, live_source=live_source)
