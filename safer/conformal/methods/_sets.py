"""Prediction-set gate methods: MAPIE's split-conformal sets, one conformity score per file.

:class:`SetMethod` holds what LAC, APS and RAPS share (a :class:`~safer.conformal.PredictionSets`
over MAPIE, Mondrian groups, the singleton decision rule, the coverage promise); each score's file
names its MAPIE score and cites its paper.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from safer.conformal.methods._base import (
    CalibrationData,
    GateMethod,
    MethodState,
    Outcome,
    Promise,
    Verdict,
    keep_labelled,
)
from safer.conformal.sets import PredictionSets, singleton_decisions

__all__ = ["SetMethod"]


class SetMethod(GateMethod):
    """Base of the prediction-set methods: recommend when the conformal set is one action.

    Promise: for a new decision exchangeable with the calibration decisions, the set contains
    the clinicians' action with probability >= 1 - alpha (marginal; per group with Mondrian
    groups). Audited as coverage over all test decisions.

    Subclasses set ``name`` and ``score`` (a MAPIE conformity score name).

    Examples
    --------
    Every set method takes Mondrian groups (coverage per group):

    >>> from safer.conformal.methods import METHODS
    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet(np.full(25, 0.2), size=400); y = p.argmax(axis=1)
    >>> sex = np.where(np.arange(400) % 2 == 0, "F", "M")
    >>> rule = METHODS["lac"](alpha=0.1)
    >>> isinstance(rule, SetMethod), rule.score
    (True, 'lac')
    >>> state = rule.conformalize(p[:300], y[:300], groups_cal=sex[:300])
    >>> state.thresholds["n_per_group"]
    {'F': 150, 'M': 150}
    >>> rule.decide(p[300:], groups=sex[300:]).sets.shape
    (100, 25)
    """

    score: ClassVar[str] = ""
    supports_groups = True
    guarantee = (
        "Promises: for a new decision drawn like the calibration decisions, the conformal set "
        "contains the clinicians' action with probability at least 1 - alpha, on average over "
        "decisions (per group with Mondrian calibration). A recommendation is issued only when "
        "the set holds a single action. Does not promise: that the clinicians' action is the "
        "best action, coverage for any one patient, or coverage in a subgroup that was not "
        "calibrated separately, nor under a shift in the patient population."
    )

    def _conformalize(self, data: CalibrationData) -> MethodState:
        sets = PredictionSets(
            self.score, self.alpha, groups=data.groups is not None, random_state=self.seed
        )
        sets.conformalize(data.proba, data.y, data.groups)
        self._sets = sets
        calibration, digest = keep_labelled(data)
        return MethodState(
            thresholds={
                "score_quantile": sets.quantiles_,
                "n_calibration": len(data.proba),
                "n_per_group": sets.n_calibration_,
            },
            calibration=calibration,
            calibration_hash=digest,
        )

    def _decide(self, proba, *, embedding, groups) -> Verdict:
        sets = self._prediction_sets().predict_set(proba, groups=groups)
        action = singleton_decisions(sets)
        size = sets.sum(axis=1)
        reason = np.where(
            size == 1,
            "single-action conformal set",
            np.where(
                size == 0,
                "abstain: empty conformal set",
                np.char.add(
                    "abstain: conformal set of ", np.char.add(size.astype(str), " actions")
                ),
            ),
        )
        return Verdict(action, sets, reason, size.astype(float))

    def promise(self) -> Promise:
        return Promise(self.guarantee, target=1.0 - self.alpha, direction="at_least")

    def outcome(self, decisions, y, kappa=None) -> Outcome:
        hits = decisions.sets[np.arange(len(y)), y]
        return Outcome(hits, np.ones(len(y), dtype=bool), "coverage")

    def _prediction_sets(self) -> PredictionSets:
        sets = getattr(self, "_sets", None)
        if sets is None:  # rebuilt from a saved state: MAPIE on the kept calibration arrays
            cal = self.state_.calibration
            groups = cal.get("groups")
            sets = PredictionSets(
                self.score, self.alpha, groups=groups is not None, random_state=self.seed
            ).conformalize(
                np.asarray(cal["proba"], dtype=float),
                np.asarray(cal["y"]),
                None if groups is None else np.asarray(groups, dtype=object),
            )
            self._sets = sets
        return sets
