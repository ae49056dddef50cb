"""SAFER's conformal selection: recommend only decisions whose uncertainty is provably low.

Method (Jin & Candès, "Selection by Prediction with Conformal p-values", JMLR 24(244), 2023):

1. fit a ridge regression ``kappa_hat = mu(embedding)`` on a split *disjoint* from calibration
   (the model's training stays);
2. for each test decision j, a conformal p-value for the null "this decision is uncertain"
   (``kappa_j >= c``) against the calibration decisions, with the clipped score of the paper,
   which reduces to ``p_j = (1 + #{i in calibration: kappa_i >= c and kappa_hat_i <=
   kappa_hat_j}) / (n_calibration + 1)``;
3. Benjamini-Hochberg at level alpha over the batch of test decisions.

Promise: among the decisions selected in a batch, the expected fraction that are in fact
uncertain (true ``kappa >= c``) is <= alpha (FDR control), for calibration and test decisions
exchangeable. It does not promise that a selected action matches the clinician's, nor anything
about one patient, and it says nothing about the decisions it did not select. Realised FDR must
be computed on the *true* kappa of the test decisions (see ``safer.conformal.report``), never
on ``kappa_hat``.

Examples
--------
>>> import numpy as np
>>> from safer.conformal import ConformalSelector
>>> rng = np.random.default_rng(0)
>>> Z = rng.normal(size=(900, 8)); kappa = Z[:, 0] + 0.5 * rng.normal(size=900)
>>> sel = ConformalSelector(alpha=0.1, c=0.0).fit(Z[:300], kappa[:300])
>>> sel = sel.conformalize(Z[300:600], kappa[300:600])
>>> chosen = sel.select(Z[600:])
>>> bool((kappa[600:][chosen] >= 0).mean() <= 0.2)
True
"""

from __future__ import annotations

import numpy as np

from safer.conformal._checks import (
    ConformalInputError,
    check_alpha,
    check_vector,
    require_calibration_size,
)
from safer.errors import NotFittedError

__all__ = ["ConformalSelector", "conformal_pvalues", "benjamini_hochberg"]


class ConformalSelector:
    """Ridge-predicted uncertainty + conformal p-values + Benjamini-Hochberg.

    Parameters
    ----------
    alpha : float
        Target FDR in (0, 1).
    c : float or None
        Uncertainty cut-off: a decision is "uncertain" when ``kappa >= c``. ``None`` takes the
        median kappa of the ridge's training split (data disjoint from calibration).
    ridge_alphas : tuple of float
        Ridge penalties tried by leave-one-out CV (``sklearn.linear_model.RidgeCV``).

    Attributes
    ----------
    coef_, intercept_ : ridge weights; ``c_`` : the cut-off used;
    null_scores_ : sorted ``kappa_hat`` of calibration decisions with ``kappa >= c``;
    n_calibration_ : int

    Examples
    --------
    >>> ConformalSelector(alpha=0.1).c is None
    True
    """

    def __init__(self, alpha: float = 0.1, c: float | None = None, ridge_alphas=(0.1, 1.0, 10.0)):
        self.alpha = alpha
        self.c = c
        self.ridge_alphas = ridge_alphas

    def fit(self, embedding_train, kappa_train) -> ConformalSelector:
        """Fit the ridge regression of kappa on embeddings (training split); returns ``self``."""
        from sklearn.linear_model import RidgeCV

        Z = _check_embedding(embedding_train, "embedding_train")
        kappa = check_vector(kappa_train, len(Z), "kappa_train")
        if len(Z) < 2:
            raise ConformalInputError("need at least 2 training decisions to fit the ridge")
        ridge = RidgeCV(alphas=tuple(self.ridge_alphas)).fit(Z, kappa)
        self.coef_ = np.asarray(ridge.coef_, dtype=float)
        self.intercept_ = float(ridge.intercept_)
        self.c_ = float(np.median(kappa)) if self.c is None else float(self.c)
        if not np.isfinite(self.c_):
            raise ConformalInputError(f"c must be a finite number, got {self.c!r}")
        return self

    def predict_kappa(self, embedding) -> np.ndarray:
        """Ridge prediction ``kappa_hat`` of the uncertainty."""
        if not hasattr(self, "coef_"):
            raise NotFittedError("ConformalSelector is not fitted: call fit first")
        Z = _check_embedding(embedding, "embedding", dim=len(self.coef_))
        return Z @ self.coef_ + self.intercept_

    def conformalize(self, embedding_cal, kappa_cal) -> ConformalSelector:
        """Store the calibration null scores; returns ``self``."""
        kappa_hat = self.predict_kappa(embedding_cal)
        kappa = check_vector(kappa_cal, len(kappa_hat), "kappa_cal")
        alpha = check_alpha(self.alpha)
        require_calibration_size(len(kappa), alpha)
        self.set_null_scores(kappa_hat[kappa >= self.c_], len(kappa))
        return self

    def set_null_scores(self, null_scores, n_calibration: int) -> None:
        """Install calibration null scores directly (used when a gate is loaded)."""
        self.null_scores_ = np.sort(np.asarray(null_scores, dtype=float))
        self.n_calibration_ = int(n_calibration)

    def pvalues(self, embedding) -> np.ndarray:
        """Conformal p-values of the null "kappa >= c" for each decision."""
        if not hasattr(self, "null_scores_"):
            raise NotFittedError("ConformalSelector has no calibration: call conformalize first")
        return conformal_pvalues(
            self.predict_kappa(embedding), self.null_scores_, self.n_calibration_
        )

    def select(self, embedding, alpha: float | None = None) -> np.ndarray:
        """Boolean mask of decisions selected by BH at level ``alpha`` (default ``self.alpha``)."""
        level = check_alpha(self.alpha if alpha is None else alpha)
        return benjamini_hochberg(self.pvalues(embedding), level)


def conformal_pvalues(kappa_hat_test, null_scores_sorted, n_calibration: int) -> np.ndarray:
    """Jin & Candès conformal p-values (deterministic, ties counted against selection).

    ``p_j = (1 + #{null calibration i: kappa_hat_i <= kappa_hat_j}) / (n_calibration + 1)``.

    Examples
    --------
    >>> conformal_pvalues(np.array([0.0, 5.0]), np.array([1.0, 2.0]), 3).tolist()
    [0.25, 0.75]
    """
    counts = np.searchsorted(null_scores_sorted, kappa_hat_test, side="right")
    return (1.0 + counts) / (n_calibration + 1.0)


def benjamini_hochberg(pvalues, alpha: float) -> np.ndarray:
    """Benjamini-Hochberg step-up: boolean mask of rejected nulls at FDR level ``alpha``.

    Examples
    --------
    >>> benjamini_hochberg(np.array([0.001, 0.02, 0.5]), 0.05).tolist()
    [True, True, False]
    """
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    if m == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(p, kind="stable")
    passed = np.flatnonzero(p[order] <= alpha * np.arange(1, m + 1) / m)
    chosen = np.zeros(m, dtype=bool)
    if len(passed):
        chosen[order[: passed[-1] + 1]] = True
    return chosen


def _check_embedding(embedding, name: str, dim: int | None = None) -> np.ndarray:
    Z = np.asarray(embedding, dtype=float)
    if Z.ndim != 2 or Z.shape[0] == 0:
        raise ConformalInputError(f"{name} must have shape (n_decisions, d), got {Z.shape}")
    if dim is not None and Z.shape[1] != dim:
        raise ConformalInputError(
            f"{name} has {Z.shape[1]} columns but the ridge was fitted on {dim}; embed with the "
            "same model that was calibrated"
        )
    if not np.all(np.isfinite(Z)):
        raise ConformalInputError(f"{name} has NaN or infinite values")
    return Z
