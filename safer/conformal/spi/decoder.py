"""A discrete patient state from a representation: standardise, then k-means.

The AI Clinician's recipe (Komorowski et al., "The Artificial Intelligence Clinician learns
optimal treatment strategies for sepsis in intensive care", Nature Medicine 2018): z-score the
features of the training decisions and cluster them with k-means; a decision's state is its
nearest centroid. Here the representation is any numeric array -- the standardised features,
features fused with quantities read from the notes, or a model's embedding (the decisions stage
computes it; :func:`safer.models.representation`); missing values count as the training mean.
See :class:`StateDecoder` and :class:`MixtureDecoder` for examples.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from tqdm.auto import tqdm

from safer._registry import Registry
from safer.errors import SaferError

__all__ = ["DECODERS", "MixtureDecoder", "StateDecoder", "auto_states", "decoder_from_dict"]

#: Rows scored against every state at once: an (n, k) matrix for all rows would hold 4.4 GB at
#: 554,000 decisions and 1,000 states (and its temporaries three times that).
_CHUNK_ROWS = 16_384


def _best_state(n_rows: int, scores, best=np.argmax) -> np.ndarray:
    """``best(scores(rows), axis=1)`` over chunks of rows: (n_rows,) int64 state numbers.

    ``scores(rows)`` gives the (len(rows), k) scores of the rows in the slice ``rows``."""
    out = np.empty(n_rows, dtype=np.int64)
    for lo in range(0, n_rows, _CHUNK_ROWS):
        rows = slice(lo, min(lo + _CHUNK_ROWS, n_rows))
        out[rows] = best(scores(rows), axis=1)
    return out


def auto_states(n_decisions: int) -> int:
    """Default number of states for ``n_decisions`` training decisions, between 20 and 1,000.

    About 300 decisions per state up to ~25,000 training decisions, then fewer per state as
    the data grow (``300 * sqrt(25,000 / n)``, at least 100): a larger cohort supports both more
    decisions per dose and finer states, and the finer states are what bring the gate toward the
    true-state oracle. Measured on the simulator at 60/35/5 (Gaussian-mixture decoder,
    ``docs/conformal.md``): at 5,000 stays (~27,000 training decisions) ~90 states deployed on
    2 of 3 seeds, 130 on 1 and 180 on none; at 20,000 stays (~110,000) ~365 states deployed
    on 3 of 3 seeds at 19.3 % mean true mortality, 700 on 5 of 5 at 18.8 %.

    >>> auto_states(5_600), auto_states(28_000), auto_states(112_000), auto_states(600_000)
    (20, 98, 790, 1000)
    """
    n = max(int(n_decisions), 1)
    per_state = float(np.clip(300.0 * np.sqrt(25_000 / n), 100.0, 300.0))
    return int(np.clip(n / per_state, 20, 1000))


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

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 0.1, (50, 2)), rng.normal(5, 0.1, (50, 2))]
    >>> dec = StateDecoder(2, seed=0).fit(X)
    >>> len(set(dec.predict(X[:50]).tolist())), len(set(dec.predict(X).tolist()))
    (1, 2)
    >>> back = StateDecoder.from_dict(dec.to_dict())
    >>> back.predict(X[:3]).tolist() == dec.predict(X[:3]).tolist()
    True
    """

    kind = "kmeans"

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
        norms = (c * c).sum(axis=1)[None, :]
        return _best_state(len(Z), lambda rows: norms - 2.0 * Z[rows] @ c.T, np.argmin)

    def to_dict(self) -> dict:
        """JSON-ready state (float32 precision, as learned)."""
        return {
            "kind": self.kind,
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


class MixtureDecoder:
    """A diagonal-Gaussian mixture over a representation, fitted by EM; a decision's state is
    its most probable component.

    Unsupervised like :class:`StateDecoder` (it reads the representation only), but with what
    k-means lacks for charted data: each state has its own spread per column (a column that
    barely varies within a state weighs more there), a missing value is left out of the
    likelihood (marginalised) instead of counted as the training mean, and the states' sizes
    enter as prior weights. Standardised like :class:`StateDecoder`, initialised from its
    k-means partition, then ``max_iter`` EM steps (Dempster, Laird and Rubin 1977; missing
    data in mixtures: Ghahramani and Jordan 1994). A state's spreads are shrunk toward the
    pooled within-state spread by ``shrinkage`` pseudo-decisions (so a small state or a column
    it rarely charts keeps a sane spread) and floored at ``var_floor`` (charted values are
    rounded, binary columns take two values).

    Parameters
    ----------
    n_states : int
        Number of mixture components (decoded states).
    seed : int
        Seed of the k-means initialisation (EM itself is deterministic).
    max_iter : int
        EM iterations at most.
    tol : float
        Stop when the mean log-likelihood per decision improves by less than this.
    shrinkage : float
        Pseudo-decisions pulling a state's variances toward the pooled within-state variance.
    var_floor : float
        Smallest variance of a standardised column within a state.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 0.1, (50, 2)), rng.normal(5, 0.1, (50, 2))]
    >>> X[::3, 0] = np.nan  # missing values are left out of the likelihood
    >>> dec = MixtureDecoder(2, seed=0).fit(X)
    >>> len(set(dec.predict(X[:50]).tolist())), len(set(dec.predict(X).tolist()))
    (1, 2)
    >>> back = decoder_from_dict(dec.to_dict())
    >>> bool((back.predict(X) == dec.predict(X)).all())
    True
    """

    kind = "gmm"

    def __init__(self, n_states: int, *, seed: int = 0, max_iter: int = 50, tol: float = 1e-4,
                 covariance: str = "tied", shrinkage: float = 10.0,
                 var_floor: float = 1e-3):  # fmt: skip
        if n_states < 1:
            raise SaferError(f"n_states must be >= 1, got {n_states}")
        if max_iter < 0 or shrinkage < 0 or var_floor <= 0:
            raise SaferError(
                "the mixture decoder needs max_iter >= 0, shrinkage >= 0, var_floor > 0"
            )
        self.n_states = int(n_states)
        self.seed = int(seed)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.shrinkage = float(shrinkage)
        self.var_floor = float(var_floor)
        if covariance not in ("tied", "diag"):
            raise SaferError(f"covariance must be 'tied' or 'diag', got {covariance!r}")
        self.covariance = covariance

    def fit(self, X, *, progress: bool = False) -> MixtureDecoder:
        """Learn the standardisation, then the mixture on training decisions ``X`` (n, d)."""
        init = StateDecoder(self.n_states, seed=self.seed, max_iter=_INIT_ITER).fit(X)
        self.mean_, self.scale_ = init.mean_, init.scale_
        Zc, M = self._standardise(X)
        k = init.n_states
        # the k-means partition as hard responsibilities, summed per state without an (n, k)
        # matrix (4.5 GB at 560,000 decisions and 1,000 states)
        labels = init.predict(X)
        hard = sparse.csr_matrix((np.ones(len(Zc)), (labels, np.arange(len(Zc)))),
                                 shape=(k, len(Zc)))  # fmt: skip
        # the sum of squares per column does not depend on the states: a tied fit needs it once
        sq = (Zc * Zc).sum(axis=0)
        self._m_step(np.bincount(labels, minlength=k).astype(float), hard @ M, hard @ Zc,
                     hard @ (Zc * Zc), sq)  # fmt: skip
        del hard
        # EM in float32 (the statistics summed in float64): half the time, the same states
        Zc, M = Zc.astype(np.float32), M.astype(np.float32)
        self.iterations_, self.log_likelihood_ = 0, -np.inf
        for _ in tqdm(range(self.max_iter), desc="mixture decoder (EM)", disable=not progress):
            stats, ll = self._e_step(Zc, M)
            self.iterations_ += 1
            self._m_step(*stats, sq)
            gained, self.log_likelihood_ = ll - self.log_likelihood_, ll
            if gained < self.tol:
                break
        # float32 precision, so a decoder read back from JSON decides identically
        self.means_, self.vars_ = _f32(self.means_), _f32(self.vars_)
        self.log_weights_ = _f32(self.log_weights_)
        self.n_states = k
        return self

    def _m_step(self, nk, n, s1, s2, sq) -> None:
        total_n = n.sum(axis=0)
        grand = s1.sum(axis=0) / np.maximum(total_n, 1e-12)
        # means: a column a state never charts falls back to the overall mean
        means = (s1 + 1e-3 * grand) / (n + 1e-3)
        if self.covariance == "tied":
            within = sq - (means * s1).sum(axis=0)  # sum over states of squared deviations
            pooled = np.maximum(within / np.maximum(total_n, 1e-12), self.var_floor)
            var = np.broadcast_to(pooled, means.shape)
        else:
            within = np.maximum(s2 - 2 * means * s1 + means**2 * n, 0.0)
            pooled = np.maximum(within.sum(axis=0) / np.maximum(total_n, 1e-12), self.var_floor)
            var = (within + self.shrinkage * pooled) / (n + self.shrinkage)
        self.means_ = means
        self.vars_ = np.maximum(var, self.var_floor)
        self.log_weights_ = np.log(np.maximum(nk / nk.sum(), 1e-12))

    def _log_joint(self, Zc, M) -> np.ndarray:
        """log p(x_observed, state) per row and state (up to a constant), in ``Zc``'s dtype."""
        dtype = Zc.dtype
        inv = (1.0 / self.vars_).astype(dtype)
        means = self.means_.astype(dtype)
        # tied: the same spreads in every state, so this term is one value per row
        tied = self.covariance == "tied"
        quad = ((Zc * Zc) @ inv[0])[:, None] if tied else (Zc * Zc) @ inv.T
        quad = quad - 2.0 * (Zc @ (means * inv).T)
        quad += M @ (means**2 * inv + np.log(self.vars_).astype(dtype)).T
        return self.log_weights_.astype(dtype)[None, :] - 0.5 * quad

    def _e_step(self, Zc, M, chunk: int = _CHUNK_ROWS):
        k, d = self.means_.shape
        nk, n, s1 = np.zeros(k), np.zeros((k, d)), np.zeros((k, d))
        s2 = np.zeros((k, d)) if self.covariance == "diag" else None
        ll = 0.0
        for lo in range(0, len(Zc), chunk):
            z, m = Zc[lo : lo + chunk], M[lo : lo + chunk]
            lj = self._log_joint(z, m)
            top = lj.max(axis=1, keepdims=True)
            R = np.exp(lj - top)
            norm = R.sum(axis=1, keepdims=True)
            ll += float((np.log(norm) + top).sum(dtype=float))
            R /= norm
            nk += R.sum(axis=0, dtype=float)
            n += R.T @ m
            s1 += R.T @ z
            if s2 is not None:
                s2 += R.T @ (z * z)
        return (nk, n, s1, s2), ll / len(Zc)

    def _standardise(self, X):
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != len(self.mean_):
            raise SaferError(
                f"the state decoder reads ({len(self.mean_)})-column representations, got "
                f"shape {X.shape}; compute the representation the gate was calibrated on"
            )
        Z = (X - self.mean_) / self.scale_
        charted = np.isfinite(Z)
        return np.where(charted, Z, 0.0), charted.astype(float)

    def predict(self, X) -> np.ndarray:
        """The most probable state of each row of ``X`` (n,), missing values left out."""
        Zc, M = self._standardise(X)
        return _best_state(len(Zc), lambda rows: self._log_joint(Zc[rows], M[rows]))

    def to_dict(self) -> dict:
        """JSON-ready state (float32 precision, as learned)."""
        return {
            "kind": self.kind,
            "n_states": self.n_states,
            "seed": self.seed,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "covariance": self.covariance,
            "shrinkage": self.shrinkage,
            "var_floor": self.var_floor,
            "iterations": self.iterations_,
            "mean": self.mean_.astype(np.float32).tolist(),
            "scale": self.scale_.astype(np.float32).tolist(),
            "means": self.means_.astype(np.float32).tolist(),
            "vars": self.vars_.astype(np.float32).tolist(),
            "log_weights": self.log_weights_.astype(np.float32).tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> MixtureDecoder:
        dec = cls(int(d["n_states"]), seed=int(d["seed"]), max_iter=int(d["max_iter"]),
                  tol=float(d["tol"]), covariance=d["covariance"],
                  shrinkage=float(d["shrinkage"]), var_floor=float(d["var_floor"]))  # fmt: skip
        dec.iterations_ = int(d["iterations"])
        dec.mean_, dec.scale_ = _f32(d["mean"]), _f32(d["scale"])
        dec.means_, dec.vars_ = _f32(d["means"]), _f32(d["vars"])
        dec.log_weights_ = _f32(d["log_weights"])
        return dec


_INIT_ITER = 25  # Lloyd iterations of the k-means start (EM refines it)

#: Decoder name -> class (the spi gate's ``decoder`` option).
DECODERS = Registry("state decoder", {"kmeans": StateDecoder, "gmm": MixtureDecoder})


def decoder_from_dict(d: dict):
    """A decoder read back from its :meth:`to_dict` (a dict without ``kind`` is k-means, as
    gates saved before the mixture decoder wrote it)."""
    return DECODERS[d.get("kind", "kmeans")].from_dict(d)


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(float)
