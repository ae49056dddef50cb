"""Synthetic but realistic decision data: a softmax model over a random linear truth."""

from __future__ import annotations

import numpy as np


def synth_decisions(n: int, seed: int, d: int = 8, sharp: float = 2.5):
    """Probabilities (n, 25) of a slightly mis-specified model, true actions, embeddings, kappa.

    Actions are drawn from a true softmax of a random linear model; the "model" sees noisy,
    over-confident logits (temperature 1.2) -- probabilities are not calibrated, as in practice.
    ``kappa`` is the model's uncertainty measured against the truth (1 - p_model(true action)),
    which depends on the embedding only through a noisy route, like a learned uncertainty.
    """
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d, 25))
    Z = rng.normal(size=(n, d))
    true_logits = sharp * Z @ W / np.sqrt(d)
    p_true = _softmax(true_logits)
    y = (p_true.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    model_logits = 1.2 * (true_logits + 0.5 * rng.normal(size=true_logits.shape))
    proba = _softmax(model_logits)
    kappa = 1.0 - proba[np.arange(n), y]
    return proba, y, Z, kappa


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
