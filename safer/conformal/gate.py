"""The gate: a calibrated conformal rule, saved as JSON, that turns probabilities into decisions.

A :class:`Gate` records the method, its levels (alpha, delta, c), the learned thresholds, the
hash of the calibration data, the hash of the model it was calibrated for and the package
version. It also keeps the calibration arrays it needs to be rebuilt exactly (and re-calibrated
at another alpha for the auditor's trade-off plot), so a saved gate is self-contained.

``gate.decide(proba, embedding=..., groups=...)`` returns a :class:`Decisions` record:

===============  ==========================================================================
field            meaning
===============  ==========================================================================
action           (n,) int: recommended action 0..24, or -1 = abstain
sets             (n, 25) bool: the conformal set (sets methods); for ``ltt``/``selection``
                 the singleton {recommended action}, empty when abstaining
reason           (n,) str: why the decision was issued or withheld
score            (n,) float: p-value (selection), top probability (ltt), set size (sets)
method, alpha, model_hash, calibration_hash: the provenance of every decision
===============  ==========================================================================

Examples
--------
>>> import numpy as np
>>> from safer.conformal import calibrate_gate
>>> rng = np.random.default_rng(0)
>>> proba = rng.dirichlet(np.full(25, 0.2), size=500)
>>> y = np.array([rng.choice(25, p=p) for p in proba])
>>> gate = calibrate_gate("lac", proba[:400], y[:400], alpha=0.2, model_hash="m1")
>>> d = gate.decide(proba[400:], model_hash="m1")
>>> d.action.shape, d.sets.shape
((100,), (100, 25))
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from safer import __version__
from safer._json import dumps
from safer.actions import N_ACTIONS
from safer.conformal._checks import (
    ConformalInputError,
    GateMismatchError,
    array_hash,
    check_alpha,
    check_groups,
    check_labels,
    check_proba,
    check_vector,
)
from safer.conformal.risk import RiskControl, decide_by_threshold
from safer.conformal.selection import ConformalSelector, benjamini_hochberg
from safer.conformal.sets import SET_METHODS, PredictionSets, singleton_decisions
from safer.errors import SaferError

__all__ = ["Gate", "Decisions", "calibrate_gate", "load_gate", "METHODS", "ABSTAIN"]

METHODS = ("selection", "lac", "aps", "raps", "ltt")
ABSTAIN = -1
_FORMAT = "safer-gate/1"


@dataclass
class Decisions:
    """Per-decision output of :meth:`Gate.decide` (arrays of length n; see module docstring)."""

    action: np.ndarray
    sets: np.ndarray
    reason: np.ndarray
    score: np.ndarray
    method: str
    alpha: float
    model_hash: str
    calibration_hash: str

    @property
    def recommended(self) -> np.ndarray:
        """Boolean mask of decisions that carry a recommendation."""
        return self.action != ABSTAIN

    def to_frame(self) -> pd.DataFrame:
        """One row per decision: action, set (list of ids), set_size, reason, score, hashes."""
        return pd.DataFrame(
            {
                "action": self.action,
                "recommended": self.recommended,
                "set": [np.flatnonzero(row).tolist() for row in self.sets],
                "set_size": self.sets.sum(axis=1),
                "reason": self.reason,
                "score": self.score,
                "method": self.method,
                "alpha": self.alpha,
                "model_hash": self.model_hash,
                "calibration_hash": self.calibration_hash,
            }
        )


@dataclass
class Gate:
    """A calibrated conformal gate. Build with :func:`calibrate_gate`, load with :func:`load_gate`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> proba = rng.dirichlet(np.full(25, 0.2), size=300)
    >>> y = proba.argmax(axis=1)
    >>> calibrate_gate("ltt", proba, y, alpha=0.1, delta=0.1, model_hash="m").method
    'ltt'
    """

    method: str
    alpha: float
    model_hash: str
    calibration_hash: str
    thresholds: dict
    delta: float | None = None
    c: float | None = None
    groups_column: str | None = None
    package_version: str = __version__
    seed: int = 0
    calibration: dict = field(default_factory=dict, repr=False)

    def decide(self, proba, *, embedding=None, groups=None, model_hash: str | None = None):
        """Decide for each row of ``proba`` (n, 25): recommend an action or abstain.

        ``embedding`` is required by ``selection``; ``groups`` by Mondrian sets. Pass
        ``model_hash`` (the model's ``content_hash_``) to have it checked against the gate's.
        """
        if model_hash is not None:
            self.check_model(model_hash)
        P = check_proba(proba)
        n = len(P)
        if self.method in SET_METHODS:
            sets = self._sets().predict_set(P, groups=groups)
            action = singleton_decisions(sets)
            size = sets.sum(axis=1)
            reason = np.where(
                size == 1,
                "single-action conformal set",
                np.where(
                    size == 0,
                    "abstain: empty conformal set",
                    np.char.add(
                        "abstain: conformal set of ", np.char.add(size.astype(str), " actions")
                    ),
                ),
            )
            score = size.astype(float)
        elif self.method == "ltt":
            lam = float(self.thresholds["lambda"])
            action = decide_by_threshold(P, lam)
            top = P.max(axis=1)
            sets = _singletons(action)
            lam_txt = "inf (no valid threshold)" if not np.isfinite(lam) else f"{lam:.2f}"
            reason = np.where(
                action >= 0,
                f"top probability >= threshold {lam_txt}",
                f"abstain: top probability below threshold {lam_txt}",
            )
            score = top
        else:
            if embedding is None:
                raise ConformalInputError(
                    "the selection gate needs embedding= (the model's embed() of these decisions)"
                )
            selector = self._selector()
            pvals = selector.pvalues(embedding)
            if len(pvals) != n:
                raise ConformalInputError(
                    f"embedding has {len(pvals)} rows but proba has {n}; pass the same decisions"
                )
            chosen = benjamini_hochberg(pvals, self.alpha)
            action = np.where(chosen, P.argmax(axis=1), ABSTAIN).astype(np.int64)
            sets = _singletons(action)
            reason = np.where(
                chosen,
                f"selected: BH at FDR {self.alpha:g} (low predicted uncertainty)",
                "abstain: uncertainty not shown to be below c",
            )
            score = pvals
        return Decisions(
            action=action,
            sets=sets,
            reason=np.asarray(reason, dtype=object),
            score=np.asarray(score, dtype=float),
            method=self.method,
            alpha=self.alpha,
            model_hash=self.model_hash,
            calibration_hash=self.calibration_hash,
        )

    def check_model(self, model_hash: str) -> None:
        """Raise :class:`GateMismatchError` unless ``model_hash`` is the gate's model."""
        if str(model_hash) != self.model_hash:
            raise GateMismatchError(
                f"this gate was calibrated for model {self.model_hash}, not {model_hash}; "
                "re-run `safer calibrate` with this model (a gate never transfers between models)"
            )

    def recalibrate(self, alpha: float) -> Gate:
        """The same method on the same calibration data at another alpha (for trade-off plots)."""
        cal = self.calibration
        if self.method == "selection":
            gate = Gate(**{**self._meta(), "alpha": check_alpha(alpha)})
            return gate
        return calibrate_gate(
            self.method,
            np.asarray(cal["proba"]),
            np.asarray(cal["y"]),
            alpha=alpha,
            delta=self.delta,
            groups_cal=None if cal.get("groups") is None else np.asarray(cal["groups"]),
            model_hash=self.model_hash,
            groups_column=self.groups_column,
            seed=self.seed,
        )

    def to_dict(self) -> dict:
        """JSON-ready dictionary (the file format of :meth:`save`)."""
        return {"format": _FORMAT, **self._meta()}

    def save(self, path) -> Path:
        """Write the gate as JSON; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps(self.to_dict()))
        return path

    def _meta(self) -> dict:
        return {
            "method": self.method,
            "alpha": self.alpha,
            "delta": self.delta,
            "c": self.c,
            "thresholds": self.thresholds,
            "model_hash": self.model_hash,
            "calibration_hash": self.calibration_hash,
            "package_version": self.package_version,
            "groups_column": self.groups_column,
            "seed": self.seed,
            "calibration": self.calibration,
        }

    def _sets(self) -> PredictionSets:
        cached = self.__dict__.get("_sets_cache")
        if cached is None:
            cal = self.calibration
            groups = cal.get("groups")
            cached = PredictionSets(
                self.method, self.alpha, groups=groups is not None, random_state=self.seed
            ).conformalize(
                np.asarray(cal["proba"], dtype=float),
                np.asarray(cal["y"]),
                None if groups is None else np.asarray(groups, dtype=object),
            )
            self.__dict__["_sets_cache"] = cached
        return cached

    def _selector(self) -> ConformalSelector:
        t = self.thresholds
        selector = ConformalSelector(alpha=self.alpha, c=self.c)
        selector.coef_ = np.asarray(t["ridge_coef"], dtype=float)
        selector.intercept_ = float(t["ridge_intercept"])
        selector.c_ = float(self.c)
        selector.set_null_scores(self.calibration["null_scores"], t["n_calibration"])
        return selector


def calibrate_gate(
    method: str,
    proba_cal,
    y_cal=None,
    *,
    alpha: float,
    delta: float | None = None,
    c: float | None = None,
    groups_cal=None,
    embedding_train=None,
    kappa_train=None,
    embedding_cal=None,
    kappa_cal=None,
    model_hash: str,
    groups_column: str | None = None,
    seed: int = 0,
) -> Gate:
    """Calibrate a :class:`Gate` on the calibration split only.

    Parameters
    ----------
    method : {"selection", "lac", "aps", "raps", "ltt"}
    proba_cal : (n, 25) calibration probabilities; y_cal : (n,) clinician actions (sets, ltt).
    alpha : level; delta : LTT failure probability (default 0.1); c : selection cut-off.
    groups_cal : per-decision group labels for Mondrian sets.
    embedding_train, kappa_train : a split disjoint from calibration, for the selection ridge.
    embedding_cal, kappa_cal : calibration embeddings and true uncertainty (selection).
    model_hash : the model's content hash, recorded and checked on use.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> p = rng.dirichlet(np.full(25, 0.2), size=200); y = p.argmax(axis=1)
    >>> calibrate_gate("aps", p, y, alpha=0.1, model_hash="abc").thresholds["n_calibration"]
    200
    """
    if method not in METHODS:
        raise ConformalInputError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    alpha = check_alpha(alpha)
    P = check_proba(proba_cal, "proba_cal")
    common = {"alpha": alpha, "model_hash": str(model_hash), "seed": int(seed)}
    if method == "selection":
        for name, value in (
            ("embedding_train", embedding_train),
            ("kappa_train", kappa_train),
            ("embedding_cal", embedding_cal),
            ("kappa_cal", kappa_cal),
        ):
            if value is None:
                raise ConformalInputError(f"method 'selection' needs {name}")
        kappa = check_vector(kappa_cal, len(P), "kappa_cal")
        selector = ConformalSelector(alpha=alpha, c=c).fit(embedding_train, kappa_train)
        selector.conformalize(embedding_cal, kappa)
        return Gate(
            method=method,
            c=selector.c_,
            calibration_hash=array_hash(np.asarray(embedding_cal, float), kappa),
            thresholds={
                "ridge_coef": selector.coef_.tolist(),
                "ridge_intercept": selector.intercept_,
                "n_calibration": selector.n_calibration_,
                "n_null_calibration": int(len(selector.null_scores_)),
            },
            calibration={"null_scores": selector.null_scores_.tolist()},
            **common,
        )
    if y_cal is None:
        raise ConformalInputError(f"method {method!r} needs y_cal, the clinicians' actions")
    y = check_labels(y_cal, len(P), "y_cal")
    groups = None if groups_cal is None else check_groups(groups_cal, len(P), "groups_cal")
    calibration = {
        "proba": P.tolist(),
        "y": y.tolist(),
        "groups": None if groups is None else groups.tolist(),
    }
    cal_hash = array_hash(P, y, groups)
    if method == "ltt":
        if groups is not None:
            raise ConformalInputError("groups apply to set methods (lac, aps, raps), not 'ltt'")
        delta = 0.1 if delta is None else check_alpha(delta, "delta")
        rc = RiskControl(alpha=alpha, delta=delta).conformalize(P, y)
        return Gate(
            method=method,
            delta=delta,
            calibration_hash=cal_hash,
            thresholds={
                "lambda": rc.threshold_,
                "n_calibration": len(P),
                "n_valid_lambdas": int(len(rc.valid_thresholds_)),
            },
            calibration=calibration,
            **common,
        )
    sets = PredictionSets(method, alpha, groups=groups is not None, random_state=seed)
    sets.conformalize(P, y, groups)
    gate = Gate(
        method=method,
        calibration_hash=cal_hash,
        groups_column=groups_column,
        thresholds={
            "score_quantile": sets.quantiles_,
            "n_calibration": len(P),
            "n_per_group": sets.n_calibration_,
        },
        calibration=calibration,
        **common,
    )
    gate.__dict__["_sets_cache"] = sets
    return gate


def load_gate(path, *, model_hash: str | None = None) -> Gate:
    """Read a gate written by :meth:`Gate.save`; with ``model_hash``, check it matches.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = np.full((20, 25), 0.04); y = np.arange(20) % 25
    >>> g = calibrate_gate("ltt", p, y, alpha=0.5, model_hash="m")
    >>> path = g.save(os.path.join(tempfile.mkdtemp(), "gate.json"))
    >>> load_gate(path, model_hash="m").method
    'ltt'
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise SaferError(f"gate file {path} not found; create it with `safer calibrate`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SaferError(
            f"{path} is not a gate JSON file ({exc}); re-run `safer calibrate`"
        ) from None
    if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
        raise SaferError(f"{path} is not a SAFER gate (format {_FORMAT}); re-run `safer calibrate`")
    raw.pop("format")
    thresholds = raw["thresholds"]
    if "lambda" in thresholds and thresholds["lambda"] is None:
        thresholds["lambda"] = float("inf")
    gate = Gate(**raw)
    if model_hash is not None:
        gate.check_model(model_hash)
    return gate


def _singletons(action: np.ndarray) -> np.ndarray:
    sets = np.zeros((len(action), N_ACTIONS), dtype=bool)
    rows = np.flatnonzero(action >= 0)
    sets[rows, action[rows]] = True
    return sets
