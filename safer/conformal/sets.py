"""Conformal prediction sets over the 25 actions, built on MAPIE's ``SplitConformalClassifier``.

The model is already trained, so MAPIE runs in ``prefit`` mode over *precomputed* probabilities:
:class:`ProbabilityPassthrough` is a tiny scikit-learn classifier whose ``predict_proba`` returns
its input. The conformity scores are MAPIE's own (one strategy object per score in
``mapie.conformity_scores``):

- ``"lac"``  least ambiguous set-valued classifier (Sadinle, Lei & Wasserman, JASA 2019);
- ``"aps"``  adaptive prediction sets (Romano, Sesia & Candès, NeurIPS 2020);
- ``"raps"`` regularized APS (Angelopoulos, Bates, Malik & Jordan, ICLR 2021). MAPIE holds out
  ``size_raps`` (20 %) of the calibration split to tune its regularization.

Promise: for a new decision exchangeable with the calibration decisions, the set contains the
clinician's action with probability >= 1 - alpha (marginal over decisions). With ``groups``
(Mondrian calibration) the promise holds within each group. Nothing is promised for a single
patient, nor for groups that were not calibrated separately.

Decision rule: a recommendation is issued only when the set holds exactly one action; an
empty set or a set of two or more actions abstains.

Examples
--------
>>> import numpy as np
>>> from safer.conformal import PredictionSets
>>> rng = np.random.default_rng(0)
>>> proba = rng.dirichlet(np.full(25, 0.3), size=400)
>>> y = np.array([rng.choice(25, p=p) for p in proba])
>>> sets = PredictionSets(method="lac", alpha=0.1).conformalize(proba[:300], y[:300])
>>> sets.predict_set(proba[300:]).shape
(100, 25)
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from safer.actions import N_ACTIONS
from safer.conformal._checks import (
    ConformalInputError,
    check_alpha,
    check_groups,
    check_labels,
    check_proba,
    require_calibration_size,
)
from safer.errors import NotFittedError

__all__ = ["PredictionSets", "ProbabilityPassthrough", "SET_METHODS", "singleton_decisions"]

#: Set methods and the MAPIE conformity score that implements each.
SET_METHODS: dict[str, str] = {"lac": "lac", "aps": "aps", "raps": "raps"}

_RAPS_HOLDOUT = 0.2  # MAPIE's RAPSConformityScore default size_raps


class ProbabilityPassthrough(ClassifierMixin, BaseEstimator):
    """A prefit scikit-learn classifier whose ``predict_proba`` returns its input.

    Lets MAPIE conformalize probabilities that any model (PyTorch included) already produced.

    Examples
    --------
    >>> import numpy as np
    >>> clf = ProbabilityPassthrough().fit()
    >>> clf.predict(np.eye(25)[[3]])
    array([3])
    """

    def fit(self, X=None, y=None) -> ProbabilityPassthrough:
        self.classes_ = np.arange(N_ACTIONS)
        self.n_features_in_ = N_ACTIONS
        return self

    def predict_proba(self, X) -> np.ndarray:
        return np.asarray(X, dtype=float)

    def predict(self, X) -> np.ndarray:
        return np.asarray(X, dtype=float).argmax(axis=1)


class PredictionSets:
    """Split-conformal prediction sets (MAPIE, prefit) with optional Mondrian groups.

    Parameters
    ----------
    method : {"lac", "aps", "raps"}
        Conformity score.
    alpha : float
        Miscoverage level in (0, 1); sets cover the true action with probability >= 1 - alpha.
    groups : bool or None
        If truthy, calibrate one MAPIE classifier per group (Mondrian); then ``groups_cal`` and
        ``groups`` are required in :meth:`conformalize` and :meth:`predict_set`.
    random_state : int
        Seed of MAPIE's RAPS hold-out split (unused by LAC and APS).

    Attributes
    ----------
    classifiers_ : dict
        One conformalized ``mapie.classification.SplitConformalClassifier`` per group
        (key ``"all"`` without groups).
    n_calibration_ : dict
        Calibration decisions per group.
    quantiles_ : dict
        MAPIE's conformity-score quantile per group (for display; sets come from MAPIE).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> proba = rng.dirichlet(np.full(25, 0.3), size=600)
    >>> y = np.array([rng.choice(25, p=p) for p in proba])
    >>> g = np.where(np.arange(600) % 2 == 0, "a", "b")
    >>> ps = PredictionSets("aps", alpha=0.2, groups=True)
    >>> ps = ps.conformalize(proba[:400], y[:400], groups_cal=g[:400])
    >>> ps.predict_set(proba[400:], groups=g[400:]).dtype
    dtype('bool')
    """

    def __init__(
        self,
        method: str = "lac",
        alpha: float = 0.1,
        groups: bool | None = None,
        random_state: int = 0,
    ):
        self.method = method
        self.alpha = alpha
        self.groups = groups
        self.random_state = random_state

    def conformalize(self, proba_cal, y_cal, groups_cal=None) -> PredictionSets:
        """Compute MAPIE conformity scores on the calibration split; returns ``self``."""
        from mapie.classification import SplitConformalClassifier

        score = _score_name(self.method)
        alpha = check_alpha(self.alpha)
        proba = check_proba(proba_cal, "proba_cal")
        y = check_labels(y_cal, len(proba), "y_cal")
        keys = self._group_keys(groups_cal, len(proba), "groups_cal")
        classifiers = {}
        counts = {}
        quantiles = {}
        for key in sorted(set(keys.tolist())):
            mask = keys == key
            n = int(mask.sum())
            usable = int(np.floor(n * (1 - _RAPS_HOLDOUT))) if score == "raps" else n
            where = "calibration set" if key == "all" else f"calibration group {key!r}"
            require_calibration_size(usable, alpha, where)
            clf = SplitConformalClassifier(
                estimator=ProbabilityPassthrough().fit(),
                confidence_level=1.0 - alpha,
                conformity_score=score,
                prefit=True,
                random_state=self.random_state,
            )
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*less labels.*")
                try:
                    clf.conformalize(proba[mask], y[mask])
                except ValueError as exc:
                    raise ConformalInputError(
                        f"MAPIE could not conformalize {where} with method {score!r}: {exc}. "
                        "RAPS stratifies its hold-out by action, so every action present needs "
                        "at least 2 calibration decisions; use 'aps' or 'lac', or more data"
                    ) from exc
                clf.predict_set(proba[mask][:1])  # makes MAPIE materialise its quantile
            classifiers[key] = clf
            counts[key] = n
            quantiles[key] = float(
                np.ravel(clf._mapie_classifier.conformity_score_function_.quantiles_)[0]
            )
        self.classifiers_ = classifiers
        self.n_calibration_ = counts
        self.quantiles_ = quantiles
        self.alpha_ = alpha
        return self

    def predict_set(self, proba, groups=None) -> np.ndarray:
        """Boolean array (n, 25): ``True`` where the action is in the conformal set."""
        if not hasattr(self, "classifiers_"):
            raise NotFittedError("PredictionSets is not conformalized: call conformalize first")
        arr = check_proba(proba)
        keys = self._group_keys(groups, len(arr), "groups")
        unknown = sorted(set(keys.tolist()) - set(self.classifiers_))
        if unknown:
            raise ConformalInputError(
                f"groups {unknown} were not seen at calibration (known: "
                f"{sorted(self.classifiers_)}); calibrate with them or merge them into known groups"
            )
        out = np.zeros(arr.shape, dtype=bool)
        for key, clf in self.classifiers_.items():
            mask = keys == key
            if mask.any():
                _, sets = clf.predict_set(arr[mask])
                out[mask] = sets[:, :, 0]
        return out

    def _group_keys(self, groups, n: int, name: str) -> np.ndarray:
        if not self.groups:
            if groups is not None:
                raise ConformalInputError(
                    f"{name} given but PredictionSets(groups=None); pass groups=True for "
                    "Mondrian calibration"
                )
            return np.full(n, "all", dtype=object)
        if groups is None:
            raise ConformalInputError(
                f"PredictionSets(groups=True) needs {name}: one group label per decision"
            )
        return check_groups(groups, n, name)


def singleton_decisions(sets: np.ndarray) -> np.ndarray:
    """Recommended action per row: the only action of a singleton set, else -1 (abstain).

    Examples
    --------
    >>> import numpy as np
    >>> s = np.zeros((2, 25), dtype=bool); s[0, 7] = True; s[1, [1, 2]] = True
    >>> singleton_decisions(s).tolist()
    [7, -1]
    """
    sizes = sets.sum(axis=1)
    return np.where(sizes == 1, sets.argmax(axis=1), -1).astype(np.int64)


def _score_name(method: str) -> str:
    if method not in SET_METHODS:
        raise ConformalInputError(
            f"unknown set method {method!r}; choose one of {sorted(SET_METHODS)}"
        )
    return SET_METHODS[method]
