"""Learn-then-test: a confidence threshold that bounds the error rate of issued recommendations
(Angelopoulos, Bates, Candès, Jordan & Lei, "Learn then Test: Calibrating Predictive Algorithms
to Achieve Risk Control", 2022; MAPIE's ``MultiClassificationLTTController`` via
:class:`safer.conformal.RiskControl`).
"""

from __future__ import annotations

import numpy as np

from safer.conformal._checks import check_alpha
from safer.conformal.methods._base import (
    ABSTAIN,
    CalibrationData,
    GateMethod,
    MethodState,
    Outcome,
    Promise,
    Verdict,
    keep_labelled,
    singleton_sets,
)
from safer.conformal.risk import RiskControl, decide_by_threshold

__all__ = ["LearnThenTest"]

DEFAULT_DELTA = 0.1


class LearnThenTest(GateMethod):
    """Recommend the most likely action when its probability is >= the learned lambda.

    ``delta`` (default 0.1) is the allowed probability, over the calibration draw, that the
    guarantee fails. When no lambda is valid, ``lambda`` is infinite and every decision
    abstains. The score of a decision is its top probability.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet(np.full(25, 0.1), size=2000)
    >>> y = np.array([rng.choice(25, p=q) for q in p])
    >>> rule = LearnThenTest(alpha=0.4, delta=0.1)
    >>> bool(rule.conformalize(p[:1500], y[:1500]).thresholds["lambda"] <= 1)
    True
    >>> rule.promise().bound
    '<= 0.4'
    """

    name = "ltt"
    guarantee = (
        "Promises: with probability at least 1 - delta over the calibration data, the expected "
        "error rate (recommended action differs from the clinicians') among issued "
        "recommendations is at most alpha. Does not promise: that a given test split stays "
        "below alpha (it can exceed it by chance), anything about a single patient, or "
        "anything about decisions where it abstained."
    )

    @classmethod
    def decode_thresholds(cls, thresholds: dict) -> dict:
        if "lambda" in thresholds and thresholds["lambda"] is None:  # JSON has no infinity
            thresholds["lambda"] = float("inf")
        return thresholds

    def _conformalize(self, data: CalibrationData) -> MethodState:
        delta = DEFAULT_DELTA if self.delta is None else check_alpha(self.delta, "delta")
        rc = RiskControl(alpha=self.alpha, delta=delta).conformalize(data.proba, data.y)
        calibration, digest = keep_labelled(data)
        return MethodState(
            thresholds={
                "lambda": rc.threshold_,
                "n_calibration": len(data.proba),
                "n_valid_lambdas": int(len(rc.valid_thresholds_)),
            },
            calibration=calibration,
            calibration_hash=digest,
            delta=delta,
        )

    def _decide(self, proba, *, embedding, groups) -> Verdict:
        lam = float(self.state_.thresholds["lambda"])
        action = decide_by_threshold(proba, lam)
        lam_txt = "inf (no valid threshold)" if not np.isfinite(lam) else f"{lam:.2f}"
        reason = np.where(
            action >= 0,
            f"top probability >= threshold {lam_txt}",
            f"abstain: top probability below threshold {lam_txt}",
        )
        return Verdict(action, singleton_sets(action), reason, proba.max(axis=1))

    def promise(self) -> Promise:
        return Promise(self.guarantee, target=self.alpha, direction="at_most")

    def outcome(self, decisions, y, kappa=None) -> Outcome:
        recommended = decisions.action != ABSTAIN
        return Outcome(decisions.action != y, recommended, "error rate of recommendations")
