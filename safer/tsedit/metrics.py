"""Metrics of an edit: control accuracy, realism and smoothness.

- :func:`hard_anchor_mae` / :func:`segment_rel_errors`: read from an edit report.
- :func:`discriminative_score`: ``|accuracy - 0.5|`` of a small classifier (logistic regression
  on values and first differences, 5-fold cross-validated) telling edited from real windows;
  0 means indistinguishable.
- :func:`context_fid`: Fréchet distance between Gaussian fits of a learned embedding of real and
  edited windows (the denoiser's own pooled features, :meth:`DiffusionEditor.embed`), in the spirit
  of Context-FID (which uses a TS2Vec embedding).
- :func:`smoothness`: mean absolute second difference (normalised units) at points within
  ``radius`` steps of an edited point.

Examples
--------
>>> import numpy as np
>>> round(smoothness(np.arange(10.0)[:, None], [(5, 0)], np.ones(1)), 6)
0.0
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = [
    "hard_anchor_mae",
    "segment_rel_errors",
    "discriminative_score",
    "context_fid",
    "smoothness",
]


def hard_anchor_mae(report: dict) -> float:
    """Mean absolute error at the c = 1 anchors of one edit report (NaN if none)."""
    errs = [a["abs_error"] for a in report["anchors"] if a["confidence"] >= 1.0]
    return float(np.mean(errs)) if errs else float("nan")


def segment_rel_errors(report: dict) -> list[float]:
    """Relative error ``|achieved - target| / |target|`` of each controlled statistic."""
    return [s["rel_error"] for s in report["segments"]]


def _features(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.concatenate([x.reshape(len(x), -1), np.diff(x, axis=1).reshape(len(x), -1)], 1)


def discriminative_score(real: np.ndarray, edited: np.ndarray, seed: int = 0) -> float:
    """``|cv accuracy - 0.5|`` of a classifier separating (n, T, C) edited from real windows."""
    X = np.concatenate([_features(real), _features(edited)])
    y = np.r_[np.zeros(len(real)), np.ones(len(edited))]
    folds = int(min(5, len(real), len(edited)))
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))
    order = np.random.default_rng(seed).permutation(len(y))
    acc = cross_val_score(clf, X[order], y[order], cv=folds).mean()
    return float(abs(acc - 0.5))


def context_fid(real_emb: np.ndarray, edited_emb: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings (n, d)."""
    mu1, mu2 = real_emb.mean(0), edited_emb.mean(0)
    s1, s2 = np.cov(real_emb, rowvar=False), np.cov(edited_emb, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def smoothness(
    x: np.ndarray, points: list[tuple[int, int]], std: np.ndarray, radius: int = 2
) -> float:
    """Mean |second difference| / std at steps within ``radius`` of the edited (time, channel)."""
    x = np.asarray(x, dtype=float) / np.asarray(std, dtype=float)
    d2 = np.abs(x[2:] - 2 * x[1:-1] + x[:-2])  # centred at steps 1..T-2
    vals = []
    for t, c in points:
        lo, hi = max(1, t - radius), min(len(x) - 1, t + radius + 1)
        vals.extend(d2[lo - 1 : hi - 1, c])
    return float(np.mean(vals)) if vals else float("nan")
