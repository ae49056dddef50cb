"""Metrics of next-action recommendation, with the standard definitions.

- ``accuracy``: top-1 agreement with the clinicians' action.
- ``hr_at_3``: share of decisions whose true action is among the 3 most probable.
- ``mrr_at_3``: mean over ALL decisions of ``1 / rank`` of the true action, 0 when the rank is
  above 3 — so ``mrr_at_3 <= hr_at_3`` always (the reference code averaged over hits only).
- ``macro_auc``: mean one-vs-rest ROC AUC over the actions that occur and do not occur
  (an AUC needs both labels).
- ``micro_auc``: ROC AUC of the flattened one-hot labels against the flattened probabilities.
- ``ece``: expected calibration error of the top-1 probability, 15 equal-width bins.
- ``log_loss``: mean negative log-probability of the true action (clipped at 1e-12).

Each is reported on surviving stays (the paper's primary set: actions that preceded survival)
and on all stays. A metric that is undefined on the rows given (no rows, a single class) is
``None``.

Examples
--------
>>> import numpy as np
>>> proba = np.eye(25)[[0, 1, 2]] * 0.9 + 0.1 / 25
>>> m = recommendation_metrics(proba, np.array([0, 1, 3]))
>>> round(m["accuracy"], 3), round(m["hr_at_3"], 3)
(0.667, 0.667)
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from safer.actions import N_ACTIONS
from safer.errors import SaferError

__all__ = [
    "METRIC_NAMES",
    "rank_of_true",
    "recommendation_metrics",
    "evaluate_predictions",
    "MetricsInputError",
]

METRIC_NAMES = ("macro_auc", "micro_auc", "hr_at_3", "mrr_at_3", "accuracy", "ece", "log_loss")
_ECE_BINS = 15


class MetricsInputError(SaferError, ValueError):
    """Probabilities, actions or outcomes of the wrong shape or range."""


def _check(proba, actions) -> tuple[np.ndarray, np.ndarray]:
    proba = np.asarray(proba, dtype=float)
    actions = np.asarray(actions)
    if proba.ndim != 2 or proba.shape[1] != N_ACTIONS:
        raise MetricsInputError(
            f"proba must have shape (n, {N_ACTIONS}), got {proba.shape}; "
            "pass model.predict_proba(cohort)"
        )
    if actions.shape != (proba.shape[0],):
        raise MetricsInputError(
            f"actions must have one entry per row of proba ({proba.shape[0]}), "
            f"got shape {actions.shape}"
        )
    if len(actions) and (actions.min() < 0 or actions.max() >= N_ACTIONS):
        raise MetricsInputError(f"actions must lie in 0..{N_ACTIONS - 1}")
    if not np.all(np.isfinite(proba)):
        raise MetricsInputError("proba contains NaN or infinite values")
    return proba, actions.astype(np.int64)


def rank_of_true(proba: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """1-based rank of the true action (ties broken against it: pessimistic)."""
    true_p = proba[np.arange(len(actions)), actions]
    return (proba >= true_p[:, None]).sum(1)


def recommendation_metrics(proba, actions, k: int = 3) -> dict[str, float | int | None]:
    """All metrics of :data:`METRIC_NAMES` plus ``n`` for one set of decisions.

    Parameters
    ----------
    proba : array (n, 25)
        Predicted probabilities over the actions.
    actions : array (n,)
        The clinicians' actions (0..24).
    k : int
        Cut-off of HR@k and MRR@k (keys keep the names ``hr_at_3``/``mrr_at_3`` only for k=3).
    """
    proba, actions = _check(proba, actions)
    n = len(actions)
    out: dict[str, float | int | None] = dict.fromkeys(METRIC_NAMES)
    out["n"] = int(n)
    if n == 0:
        return out
    rank = rank_of_true(proba, actions)
    hit = rank <= k
    out[f"hr_at_{k}"] = float(hit.mean())
    out[f"mrr_at_{k}"] = float(np.where(hit, 1.0 / rank, 0.0).mean())
    top = proba.argmax(1)
    out["accuracy"] = float((top == actions).mean())
    out["log_loss"] = float(-np.log(np.clip(proba[np.arange(n), actions], 1e-12, None)).mean())
    out["ece"] = _ece(proba.max(1), top == actions)
    onehot = np.eye(N_ACTIONS, dtype=int)[actions]
    aucs = [
        roc_auc_score(onehot[:, c], proba[:, c])
        for c in range(N_ACTIONS)
        if 0 < onehot[:, c].sum() < n
    ]
    out["macro_auc"] = float(np.mean(aucs)) if aucs else None
    flat = onehot.ravel()
    out["micro_auc"] = (
        float(roc_auc_score(flat, proba.ravel())) if 0 < flat.sum() < flat.size else None
    )
    return out


def _ece(confidence: np.ndarray, correct: np.ndarray) -> float:
    edges = np.linspace(0.0, 1.0, _ECE_BINS + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, _ECE_BINS - 1)
    total = 0.0
    for b in range(_ECE_BINS):
        sel = which == b
        if sel.any():
            total += sel.mean() * abs(correct[sel].mean() - confidence[sel].mean())
    return float(total)


def evaluate_predictions(proba, actions, died) -> dict[str, dict[str, float | int | None]]:
    """Metrics on surviving stays and on all stays: ``{"survivors": {...}, "all": {...}}``.

    Parameters
    ----------
    proba : array (n, 25)
    actions : array (n,)
        The clinicians' actions.
    died : array (n,)
        0/1 outcome of each row's stay.

    Examples
    --------
    >>> import numpy as np
    >>> out = evaluate_predictions(np.full((2, 25), 0.04), np.array([3, 4]), np.array([0, 1]))
    >>> out["survivors"]["n"], out["all"]["n"]
    (1, 2)
    """
    proba, actions = _check(proba, actions)
    died = np.asarray(died)
    if died.shape != actions.shape:
        raise MetricsInputError(f"died must have shape {actions.shape}, got {died.shape}")
    survived = died == 0
    return {
        "survivors": recommendation_metrics(proba[survived], actions[survived]),
        "all": recommendation_metrics(proba, actions),
    }
