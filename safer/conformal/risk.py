"""Learn-then-test risk control with MAPIE: a confidence threshold that bounds the error rate.

A recommendation (the model's most likely action) is issued only when its probability is at
least a threshold lambda; otherwise the layer abstains. :class:`RiskControl` asks MAPIE's
``MultiClassificationLTTController`` (Angelopoulos, Bates, Candès, Jordan & Lei, "Learn then
Test: Calibrating Predictive Algorithms to Achieve Risk Control", 2022) for the lambda, among a
grid, that controls

    error rate of issued recommendations = P(action != clinician's action | recommended)

at level alpha with probability >= 1 - delta over the draw of the calibration split (binary
Hoeffding-Bentkus p-values, Bonferroni-Holm family-wise correction). Among the valid lambdas
the one with the fewest abstentions is kept.

Promise: with probability >= 1 - delta over calibration, the expected error rate among issued
recommendations on new exchangeable decisions is <= alpha. It is not a per-patient promise; a
single test split can exceed alpha by chance; and if no lambda is valid, every decision
abstains (``threshold_`` is ``inf``).

Examples
--------
>>> import numpy as np
>>> from safer.conformal import RiskControl
>>> rng = np.random.default_rng(0)
>>> proba = rng.dirichlet(np.full(25, 0.1), size=2000)
>>> y = np.array([rng.choice(25, p=p) for p in proba])
>>> rc = RiskControl(alpha=0.4, delta=0.1).conformalize(proba, y)
>>> bool(0 <= rc.threshold_ <= 1), rc.controlled_
(True, True)
"""

from __future__ import annotations

import warnings

import numpy as np

from safer.actions import N_ACTIONS
from safer.conformal._checks import (
    ConformalInputError,
    check_alpha,
    check_labels,
    check_proba,
)
from safer.errors import NotFittedError

__all__ = ["RiskControl", "DEFAULT_LAMBDAS"]

#: Candidate thresholds on the top probability tested by learn-then-test.
DEFAULT_LAMBDAS = np.round(np.linspace(0.0, 0.99, 100), 4)


class RiskControl:
    """Choose the confidence threshold that controls the recommendation error rate.

    Parameters
    ----------
    alpha : float
        Target error rate of issued recommendations, in (0, 1).
    delta : float
        Allowed probability (over calibration) that the guarantee fails, in (0, 1).
    lambdas : array-like or None
        Candidate thresholds in [0, 1]; default :data:`DEFAULT_LAMBDAS`.

    Attributes
    ----------
    threshold_ : float
        Chosen lambda (``inf`` when no candidate is valid: always abstain).
    valid_thresholds_ : np.ndarray
        Every candidate that passed the family-wise test.
    controlled_ : bool
        Whether any threshold controls the risk (else every decision abstains).
    n_calibration_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rc = RiskControl(alpha=0.1, delta=0.1)
    >>> rc.lambdas is None
    True
    """

    def __init__(self, alpha: float = 0.1, delta: float = 0.1, lambdas=None):
        self.alpha = alpha
        self.delta = delta
        self.lambdas = lambdas

    def conformalize(self, proba_cal, y_cal) -> RiskControl:
        """Run learn-then-test on the calibration split; returns ``self``.

        Named after the split it uses, as MAPIE names it (there is nothing to fit: the model is
        already trained).
        """
        from mapie.risk_control import BinaryRisk, MultiClassificationLTTController, abstention_rate

        alpha = check_alpha(self.alpha)
        delta = check_alpha(self.delta, "delta")
        proba = check_proba(proba_cal, "proba_cal")
        y = check_labels(y_cal, len(proba), "y_cal")
        lambdas = DEFAULT_LAMBDAS if self.lambdas is None else np.asarray(self.lambdas, float)
        if lambdas.ndim != 1 or len(lambdas) == 0 or lambdas.min() < 0 or lambdas.max() > 1:
            raise ConformalInputError("lambdas must be a non-empty 1-D grid of values in [0, 1]")
        # A threshold above every calibration top probability issues nothing: MAPIE gives it a
        # NaN p-value, which makes its Holm step reject nothing at all. The grid is cut to the
        # thresholds that issue at least one recommendation; the cut depends on the
        # probabilities only (not the labels), so conditional on them the tested family is
        # fixed and the family-wise guarantee is unchanged.
        lambdas = lambdas[lambdas <= proba.max()]
        if len(lambdas) == 0:
            raise ConformalInputError(
                "every candidate threshold exceeds the largest calibration probability; pass "
                "lower lambdas"
            )
        error_of_issued = BinaryRisk(
            risk_occurrence=lambda y_true, y_pred: y_pred != y_true,
            risk_condition=lambda y_true, y_pred: y_pred == y_pred,  # not abstained (not NaN)
            higher_is_better=False,
        )
        controller = MultiClassificationLTTController(
            predict_function=_identity,
            risks=[error_of_issued],
            target_level=[alpha],
            confidence_level=1.0 - delta,
            best_predict_param_choice=abstention_rate,
            list_predict_params=lambdas,
            classes=np.arange(N_ACTIONS),
        )
        with warnings.catch_warnings():
            # MAPIE warns when no threshold is valid; we record it in controlled_ instead
            warnings.filterwarnings("ignore", message="No predict parameters were found")
            controller.calibrate(proba, y)
        self.controller_ = controller
        self.valid_thresholds_ = np.asarray(controller.valid_predict_params, dtype=float)
        best = controller.best_predict_param
        self.threshold_ = float("inf") if best is None else float(best)
        self.controlled_ = best is not None
        self.n_calibration_ = len(proba)
        return self

    def predict(self, proba) -> np.ndarray:
        """Most likely action where its probability >= ``threshold_``, else -1 (abstain)."""
        if not hasattr(self, "threshold_"):
            raise NotFittedError("RiskControl is not conformalized: call conformalize first")
        return decide_by_threshold(check_proba(proba), self.threshold_)


def decide_by_threshold(proba: np.ndarray, threshold: float) -> np.ndarray:
    """The rule MAPIE's controller applies: argmax if max probability >= threshold, else -1."""
    top = proba.argmax(axis=1)
    return np.where(proba.max(axis=1) >= threshold, top, -1).astype(np.int64)


def _identity(X):
    return np.asarray(X, dtype=float)
