"""Conformal selection: recommend only the decisions whose uncertainty is provably low
(Jin & Candès, "Selection by Prediction with Conformal p-values", JMLR 24(244), 2023; SAFER's
gate, on :class:`safer.conformal.ConformalSelector`).

A ridge regression predicts the uncertainty from the model's embedding (fitted on the training
split, disjoint from calibration); conformal p-values of the null "uncertain" (kappa >= c)
against the calibration decisions; Benjamini-Hochberg at level alpha over the batch.
"""

from __future__ import annotations

import numpy as np

from safer.conformal._checks import ConformalInputError, array_hash
from safer.conformal.methods._base import (
    ABSTAIN,
    UNCERTAINTY_KINDS,
    CalibrationData,
    GateMethod,
    MethodState,
    Outcome,
    Promise,
    Verdict,
    singleton_sets,
)
from safer.conformal.selection import ConformalSelector, benjamini_hochberg

__all__ = ["ConformalSelection"]

_STATEMENT = (
    "Promises: among the decisions it selects for recommendation, the expected fraction "
    "whose true uncertainty {what} is at least c (false discoveries) is at most alpha "
    "(Benjamini-Hochberg over conformal p-values). Realised FDR is computed on the true "
    "{short} of test decisions. Does not promise: that a selected action matches the "
    "clinicians', FDR within any subgroup, or anything about decisions it did not select."
)


class ConformalSelection(GateMethod):
    """Select decisions by BH over conformal p-values of "kappa >= c"; recommend their argmax.

    ``c`` defaults to the median kappa of the training split. ``uncertainty`` names what kappa
    is ("kappa": SAFER's KL kappa; "entropy": a baseline's normalised entropy), so that ``c`` is
    read on the right scale; the promise names it. The score of a decision is its p-value.
    Re-calibrating at another alpha keeps the ridge, c and the calibration null scores (BH's
    level is the only thing that changes).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Z = rng.normal(size=(900, 4)); kappa = Z[:, 0] + 0.5 * rng.normal(size=900)
    >>> p = rng.dirichlet(np.full(25, 0.3), size=900)
    >>> rule = ConformalSelection(alpha=0.1, c=0.0, uncertainty="entropy")
    >>> state = rule.conformalize(p[300:600], embedding_train=Z[:300], kappa_train=kappa[:300],
    ...                           embedding_cal=Z[300:600], kappa_cal=kappa[300:600])
    >>> state.c, rule.decide(p[600:], embedding=Z[600:]).action.shape
    (0.0, (300,))
    """

    name = "selection"
    needs_labels = False
    needs_embedding = True
    needs_kappa = True
    guarantee = _STATEMENT.format(what="kappa", short="kappa")

    def _conformalize(self, data: CalibrationData) -> MethodState:
        selector = ConformalSelector(alpha=self.alpha, c=self.c)
        selector.fit(data.embedding_train, data.kappa_train)
        selector.conformalize(data.embedding_cal, data.kappa_cal)
        return MethodState(
            thresholds={
                "ridge_coef": selector.coef_.tolist(),
                "ridge_intercept": selector.intercept_,
                "n_calibration": selector.n_calibration_,
                "n_null_calibration": int(len(selector.null_scores_)),
            },
            calibration={"null_scores": selector.null_scores_.tolist()},
            calibration_hash=array_hash(np.asarray(data.embedding_cal, float), data.kappa_cal),
            c=selector.c_,
        )

    def _decide(self, proba, *, embedding, groups) -> Verdict:
        n = len(proba)
        pvals = self._conformal_selector().pvalues(embedding)
        if len(pvals) != n:
            raise ConformalInputError(
                f"embedding has {len(pvals)} rows but proba has {n}; pass the same decisions"
            )
        chosen = benjamini_hochberg(pvals, self.alpha)
        action = np.where(chosen, proba.argmax(axis=1), ABSTAIN).astype(np.int64)
        reason = np.where(
            chosen,
            f"selected: BH at FDR {self.alpha:g} (low predicted uncertainty)",
            "abstain: uncertainty not shown to be below c",
        )
        return Verdict(action, singleton_sets(action), reason, pvals)

    def recalibrate(self, alpha: float) -> ConformalSelection:
        return type(self).from_state(
            self._state(), alpha=alpha, seed=self.seed, uncertainty=self.uncertainty
        )

    def promise(self) -> Promise:
        if self.uncertainty is None:
            statement = self.guarantee + (
                " The kind of uncertainty (SAFER's kappa or a baseline's entropy) was not "
                "recorded in this gate."
            )
        else:
            what = f"({UNCERTAINTY_KINDS[self.uncertainty]})"
            statement = _STATEMENT.format(what=what, short=self.uncertainty)
        return Promise(statement, target=self.alpha, direction="at_most")

    def outcome(self, decisions, y, kappa=None) -> Outcome:
        if kappa is None:
            raise ConformalInputError(
                "the selection outcome needs kappa=, the TRUE uncertainty of the test decisions"
            )
        recommended = decisions.action != ABSTAIN
        short = "kappa" if self.uncertainty is None else self.uncertainty
        metric = f"false discovery rate (true {short} >= c)"
        return Outcome(kappa >= self.state_.c, recommended, metric)

    def _conformal_selector(self) -> ConformalSelector:
        selector = getattr(self, "_selector", None)
        if selector is None:  # always from the saved state, so a loaded gate decides the same
            state = self.state_
            t = state.thresholds
            selector = ConformalSelector(alpha=self.alpha, c=state.c)
            selector.coef_ = np.asarray(t["ridge_coef"], dtype=float)
            selector.intercept_ = float(t["ridge_intercept"])
            selector.c_ = float(state.c)
            selector.set_null_scores(state.calibration["null_scores"], t["n_calibration"])
            self._selector = selector
        return selector
