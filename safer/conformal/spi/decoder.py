"""A discrete patient state from a representation: standardise, then k-means.

The AI Clinician's recipe (Komorowski et al., "The Artificial Intelligence Clinician learns
optimal treatment strategies for sepsis in intensive care", Nature Medicine 2018): z-score the
features of the training decisions and cluster them with k-means; a decision's state is its
nearest centroid. Here the representation is any numeric array -- the standardised features,
features fused with quantities read from the notes, or a model's embedding (the decisions stage
computes it; :func:`safer.models.representation`); missing values count as the training mean.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = np.r_[rng.normal(0, 0.1, (50, 2)), rng.normal(5, 0.1, (50, 2))]
>>> dec = StateDecoder(2, seed=0).fit(X)
>>> len(set(dec.predict(X[:50]).tolist())), len(set(dec.predict(X).tolist()))
(1, 2)
>>> StateDecoder.from_dict(dec.to_dict()).predict(X[:3]).tolist() == dec.predict(X[:3]).tolist()
True
"""

from __future__ import annotations

import numpy as np

from safer.errors import SaferError

__all__ = ["StateDecoder", "auto_states"]


def auto_states(n_decisions: int) -> int:
    """Default number of states for ``n_decisions`` training decisions: about 300 decisions per
    state, between 20 and 500 (the AI Clinician used 750 states for ~17,000 stays; fewer,
    better-populated states give the held-out safety test more decisions per state -- measured
    in ``docs/benchmarks/safe_gate.md``).

    >>> auto_states(5_600), auto_states(28_000), auto_states(112_000)
    (20, 93, 373)
    """
    return int(np.clip(n_decisions // 300, 20, 500))


class StateDecoder:
    """Standardisation and k-means centroids over a representation.

    Parameters
    ----------
    n_states : int
        Number of clusters (decoded states).
    seed : int
        Seed of the k-means initialisation.
    max_iter : int
        Lloyd iterations.
    """

    def __init__(self, n_states: int, *, seed: int = 0, max_iter: int = 100):
        if n_states < 1:
            raise SaferError(f"n_states must be >= 1, got {n_states}")
        self.n_states = int(n_states)
        self.seed = int(seed)
        self.max_iter = int(max_iter)

    def _standardise(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != len(self.mean_):
            raise SaferError(
                f"the state decoder reads ({len(self.mean_)})-column representations, got "
                f"shape {X.shape}; compute the representation the gate was calibrated on"
            )
        return np.nan_to_num((X - self.mean_) / self.scale_, nan=0.0, posinf=0.0, neginf=0.0)

    def fit(self, X) -> StateDecoder:
        """Learn the standardisation and the centroids on training decisions ``X`` (n, d)."""
        from sklearn.cluster import KMeans

        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or len(X) == 0:
            raise SaferError(f"the state decoder needs a non-empty (n, d) array, got {X.shape}")
        with np.errstate(all="ignore"):
            mean = np.nanmean(X, axis=0)
            scale = np.nanstd(X, axis=0)
        # float32 precision throughout, so a decoder read back from JSON decides identically
        self.mean_ = _f32(np.nan_to_num(mean))
        self.scale_ = _f32(np.where(np.isfinite(scale) & (scale > 0), scale, 1.0))
        Z = self._standardise(X)
        k = min(self.n_states, len(np.unique(Z, axis=0)))
        km = KMeans(k, n_init=1, max_iter=self.max_iter, random_state=self.seed).fit(Z)
        self.centers_ = _f32(km.cluster_centers_)
        self.n_states = k
        return self

    def predict(self, X) -> np.ndarray:
        """The nearest centroid of each row of ``X`` (n,)."""
        Z = self._standardise(X)
        c = self.centers_
        dist = (c * c).sum(axis=1)[None, :] - 2.0 * Z @ c.T
        return dist.argmin(axis=1).astype(np.int64)

    def to_dict(self) -> dict:
        """JSON-ready state (float32 precision, as learned)."""
        return {
            "n_states": self.n_states,
            "seed": self.seed,
            "mean": self.mean_.astype(np.float32).tolist(),
            "scale": self.scale_.astype(np.float32).tolist(),
            "centers": self.centers_.astype(np.float32).tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> StateDecoder:
        dec = cls(int(d["n_states"]), seed=int(d.get("seed", 0)))
        dec.mean_ = _f32(d["mean"])
        dec.scale_ = _f32(d["scale"])
        dec.centers_ = _f32(d["centers"])
        return dec


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(float)
