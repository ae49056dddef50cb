"""The gate: a calibrated conformal rule, saved as JSON, that turns probabilities into decisions.

A :class:`Gate` records provenance -- the method's name, its level alpha, the hash of the model
it was calibrated for, the hash of the calibration data, the package version, the seed, the
Mondrian groups column, the kind of uncertainty a selection gate read, and where its audit
report was written -- plus the method's state: the learned ``thresholds``, the levels ``delta``
and ``c`` where the method has them, and the ``calibration`` arrays it needs to be rebuilt
exactly (and re-calibrated at another alpha for the auditor's trade-off plot), so a saved gate
is self-contained. What the method does lives in its class in :mod:`safer.conformal.methods`
(``gate.rule``); the gate never switches on the method's name.

Integrity: the ``calibration_hash`` covers the calibration data *and* what was calibrated on it
(method, alpha, delta, c, seed, uncertainty kind, Mondrian column), so a gate recalibrated at
another alpha is another gate. A saved file carries a ``content_hash``: SHA-256 over everything
that determines decisions (method, alpha, delta, c, thresholds, calibration arrays, seed,
groups column, uncertainty kind, model and calibration hashes — not the report path or the
package version), as saved. :func:`load_gate` recomputes it and refuses a file whose content
does not match (a hand-edited threshold, alpha or array), and refuses missing or malformed
fields with a message; files saved before the hash existed load with a
:class:`GateIntegrityWarning`. Writes are atomic (:func:`safer._atomic.atomic_file`).

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

``gate.needs_embedding`` / ``gate.needs_kappa`` / ``gate.needs_trajectories`` say whether the
caller must compute the decisions' representation (for ``decide``; ``gate.representation``
names its kind: the model's ``embed()`` when None), the model's uncertainty (for the audit) and
where each decision sits in its stay (:class:`~safer.conformal.methods.Trajectories`, for
calibration and the audit).

Examples
--------
>>> import numpy as np
>>> from safer.conformal import calibrate_gate
>>> rng = np.random.default_rng(0)
>>> proba = rng.dirichlet(np.full(25, 0.2), size=500)
>>> y = np.array([rng.choice(25, p=p) for p in proba])
>>> gate = calibrate_gate("lac", proba[:400], y[:400], alpha=0.2, model_hash="m1")
>>> d = gate.decide(proba[400:], model_hash="m1")
>>> d.action.shape, d.sets.shape, gate.needs_embedding
((100,), (100, 25), False)
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from safer import __version__
from safer._artifact import ArtifactError, check_saved_version
from safer._atomic import write_text
from safer._json import dumps
from safer._registry import UnknownNameError
from safer.conformal._checks import GateMismatchError, check_alpha
from safer.conformal.methods import (
    ABSTAIN,
    METHODS,
    GateMethod,
    MethodState,
    check_uncertainty_kind,
)
from safer.errors import SaferError

__all__ = [
    "Gate",
    "Decisions",
    "GateIntegrityError",
    "GateIntegrityWarning",
    "calibrate_gate",
    "load_gate",
    "METHODS",
    "ABSTAIN",
]

_FORMAT = "safer-gate/2"
_READABLE_FORMATS = ("safer-gate/1", _FORMAT)  # /1: before report_path and uncertainty
# fields that do not change a decision: left out of the content hash
_NOT_DECISIVE = ("report_path", "package_version")
_REQUIRED = ("method", "alpha", "model_hash", "calibration_hash", "thresholds")


class GateIntegrityError(ArtifactError):
    """A gate file was changed after it was saved, or lacks / garbles fields it needs."""


class GateIntegrityWarning(UserWarning):
    """A gate file saved before gate files carried a content hash: it cannot be verified."""


def _digest(payload) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _content_hash(meta: dict) -> str:
    """SHA-256 over the decisive fields of ``meta`` in their saved (JSON) form."""
    decisive = {k: v for k, v in meta.items() if k not in _NOT_DECISIVE}
    return _digest(json.loads(dumps(decisive)))


@dataclass
class Decisions:
    """Per-decision output of :meth:`Gate.decide` (arrays of length n; see module docstring).

    The decisions stage also makes ungated ones (:func:`safer.decisions.decide` without a gate):
    then ``sets`` is None (no prediction set), ``method`` is ``"none"`` and ``alpha`` and
    ``calibration_hash`` are None.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> proba = rng.dirichlet(np.full(25, 0.2), size=300); y = proba.argmax(axis=1)
    >>> gate = calibrate_gate("lac", proba[:200], y[:200], alpha=0.1, model_hash="m")
    >>> decisions = gate.decide(proba[200:])
    >>> decisions.action.shape, decisions.method, decisions.alpha
    ((100,), 'lac', 0.1)
    >>> frame = decisions.to_frame()
    >>> bool((frame["recommended"] == (frame["set_size"] == 1)).all())  # LAC: singleton sets
    True
    """

    action: np.ndarray
    sets: np.ndarray | None
    reason: np.ndarray
    score: np.ndarray
    method: str
    alpha: float | None
    model_hash: str
    calibration_hash: str | None

    @property
    def recommended(self) -> np.ndarray:
        """Boolean mask of decisions that carry a recommendation."""
        return self.action != ABSTAIN

    def to_frame(self) -> pd.DataFrame:
        """One row per decision: action, set (list of ids), set_size, reason, score, hashes."""
        sets = self.sets
        return pd.DataFrame(
            {
                "action": self.action,
                "recommended": self.recommended,
                "set": None if sets is None else [np.flatnonzero(r).tolist() for r in sets],
                "set_size": None if sets is None else sets.sum(axis=1),
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

    Attributes
    ----------
    method : str
        Name of the method in :data:`safer.conformal.METHODS`.
    alpha : float
        The level.
    model_hash, calibration_hash : str
        The model it was calibrated for; the calibration data.
    thresholds, calibration : dict
        The method's learned state and the calibration arrays it is rebuilt from.
    delta, c : float or None
        LTT's failure probability; selection's uncertainty cut-off.
    groups_column : str or None
        Cohort column of the Mondrian groups (set methods).
    package_version : str
    seed : int
    uncertainty : {"kappa", "entropy"} or None
        The kind of kappa a selection gate was calibrated on (so ``c`` has a known scale);
        None for methods that do not read kappa, or when not recorded.
    report_path : str or None
        Where an audit report of this gate was written (:meth:`with_report`); None until then.
    options : dict
        The method's settings beyond the levels (e.g. the safe gate's improvement algorithm).
    representation : str or None
        The kind of representation the method reads as ``embedding`` (e.g. ``"features"``);
        None = the model's ``embed()``. The decisions stage computes it
        (:func:`safer.models.representation`).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> proba = rng.dirichlet(np.full(25, 0.2), size=300)
    >>> y = proba.argmax(axis=1)
    >>> gate = calibrate_gate("ltt", proba, y, alpha=0.1, delta=0.1, model_hash="m")
    >>> gate.method, gate.rule.promise().bound
    ('ltt', '<= 0.1')
    >>> gate.with_report("audit/ltt.html").report_path
    'audit/ltt.html'
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
    uncertainty: str | None = None
    report_path: str | None = None
    options: dict = field(default_factory=dict)
    representation: str | None = None

    # -- the method behind the gate ------------------------------------------------------------

    @property
    def rule(self) -> GateMethod:
        """The method object (:class:`~safer.conformal.methods.GateMethod`) in this gate's state."""
        key = self._rule_key()
        cached = self.__dict__.get("_rule")
        if cached is not None and cached[0] == key:
            return cached[1]
        state = MethodState(
            thresholds=self.thresholds,
            calibration=self.calibration,
            calibration_hash=self.calibration_hash,
            delta=self.delta,
            c=self.c,
            options=self.options,
        )
        rule = self._method_class().from_state(
            state, alpha=self.alpha, seed=self.seed, uncertainty=self.uncertainty
        )
        self.__dict__["_rule"] = (key, rule)
        return rule

    @property
    def needs_labels(self) -> bool:
        """Whether calibration needs the clinicians' actions."""
        return self._method_class().needs_labels

    @property
    def needs_embedding(self) -> bool:
        """Whether :meth:`decide` needs ``embedding=`` (the model's ``embed()``)."""
        return self._method_class().needs_embedding

    @property
    def needs_kappa(self) -> bool:
        """Whether calibration and the audit need kappa (the model's ``uncertainty()``)."""
        return self._method_class().needs_kappa

    @property
    def needs_trajectories(self) -> bool:
        """Whether calibration and the audit need each decision's stay, step, action and
        outcome (:class:`~safer.conformal.methods.Trajectories`)."""
        return self._method_class().needs_trajectories

    @property
    def supports_groups(self) -> bool:
        """Whether the method takes per-decision groups (Mondrian calibration)."""
        return self._method_class().supports_groups

    @property
    def abstains_everywhere(self) -> bool:
        """Whether this gate abstains on every decision whatever the model says (a safe gate
        whose held-out test certified nothing); then a gated policy is exactly its fallback."""
        return self.rule.abstains_everywhere

    # -- use -------------------------------------------------------------------------------------

    def decide(self, proba, *, embedding=None, groups=None, model_hash: str | None = None):
        """Decide for each row of ``proba`` (n, 25): recommend an action or abstain.

        ``embedding`` is required when :attr:`needs_embedding` (selection); ``groups`` by
        Mondrian sets. Pass ``model_hash`` (the model's ``content_hash_``) to have it checked
        against the gate's.
        """
        if model_hash is not None:
            self.check_model(model_hash)
        verdict = self.rule.decide(proba, embedding=embedding, groups=groups)
        return Decisions(
            action=verdict.action,
            sets=verdict.sets,
            reason=np.asarray(verdict.reason, dtype=object),
            score=np.asarray(verdict.score, dtype=float),
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
        rule = self.rule.recalibrate(check_alpha(alpha))
        return _gate_from_rule(
            self.method,
            rule,
            model_hash=self.model_hash,
            groups_column=self.groups_column,
            method_class=self._method_class(),
            representation=self.representation,
        )

    def with_report(self, path) -> Gate:
        """This gate with :attr:`report_path` set to where its audit report was written.

        Save the returned gate over the old file so the store can find the report:
        ``gate.with_report(html_path).save(gate_path)``.
        """
        gate = replace(self, report_path=str(path))
        gate.__dict__.update({k: v for k, v in self.__dict__.items() if k.startswith("_")})
        return gate

    # -- files -----------------------------------------------------------------------------------

    @property
    def content_hash(self) -> str:
        """SHA-256 over everything that determines this gate's decisions (saved in its file)."""
        return _content_hash(self._meta())

    def to_dict(self) -> dict:
        """JSON-ready dictionary (the file format of :meth:`save`)."""
        meta = self._meta()
        return {"format": _FORMAT, **meta, "content_hash": _content_hash(meta)}

    def save(self, path) -> Path:
        """Write the gate as JSON, atomically (a failed save keeps the previous file)."""
        return write_text(path, dumps(self.to_dict()))

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
            "uncertainty": self.uncertainty,
            "report_path": self.report_path,
            "options": self.options,
            "representation": self.representation,
        }

    def _method_class(self) -> type[GateMethod]:
        # the class the gate was calibrated or loaded with (its registry may extend METHODS)
        name, cls = self.__dict__.get("_method_cls", (None, None))
        return cls if name == self.method else METHODS[self.method]

    def _rule_key(self) -> tuple:
        # the rule is rebuilt when a field it reads is changed in place
        return (
            self.method, self.alpha, self.delta, self.c, self.seed, self.uncertainty,
            id(self.thresholds), id(self.calibration), self.calibration_hash, id(self.options),
        )  # fmt: skip


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
    trajectories_train=None,
    trajectories_cal=None,
    model_hash: str,
    groups_column: str | None = None,
    seed: int = 0,
    uncertainty_kind: str | None = None,
    options: dict | None = None,
    representation: str | None = None,
    methods: Mapping[str, type[GateMethod]] = METHODS,
) -> Gate:
    """Calibrate a :class:`Gate` on the calibration split only.

    Parameters
    ----------
    method : str
        A name in ``methods`` (by default :data:`safer.conformal.METHODS`: "selection", "lac",
        "aps", "raps", "ltt"); an unknown name raises an error listing the known ones.
    proba_cal : (n, 25) calibration probabilities; y_cal : (n,) clinician actions (sets, ltt).
    alpha : level; delta : LTT failure probability (default 0.1); c : selection cut-off.
    groups_cal : per-decision group labels for Mondrian sets (methods that support groups).
    embedding_train, kappa_train : a split disjoint from calibration, for the selection ridge.
    embedding_cal, kappa_cal : calibration embeddings and true uncertainty (selection).
    model_hash : the model's content hash, recorded and checked on use.
    groups_column : the cohort column ``groups_cal`` came from (recorded by group methods).
    seed : seed of the method's randomness (RAPS's hold-out split).
    uncertainty_kind : {"kappa", "entropy"} or None
        What kappa is (the model's ``uncertainty_kind``), recorded by methods that read kappa
        so the gate's ``c`` has a known scale; ignored (None) by the others.
    trajectories_train, trajectories_cal : Trajectories, optional
        Stay, step, action and outcome of each training / calibration decision (methods with
        ``needs_trajectories``, e.g. "spi").
    options : dict, optional
        The method's settings beyond the levels (its ``default_options`` name them).
    representation : str, optional
        The kind of the ``embedding_*`` arrays when they are not the model's ``embed()``;
        recorded so the decisions stage computes the same at decision time.
    methods : mapping
        The name map to look ``method`` up in; pass an extended copy of
        :data:`safer.conformal.METHODS` for a method kept outside the package.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> p = rng.dirichlet(np.full(25, 0.2), size=200); y = p.argmax(axis=1)
    >>> calibrate_gate("aps", p, y, alpha=0.1, model_hash="abc").thresholds["n_calibration"]
    200
    """
    cls = methods[method]
    kind = check_uncertainty_kind(uncertainty_kind) if cls.needs_kappa else None
    rule = cls(alpha, delta=delta, c=c, seed=int(seed), uncertainty=kind, options=options)
    rule.conformalize(
        proba_cal,
        y_cal,
        groups_cal=groups_cal,
        embedding_train=embedding_train,
        kappa_train=kappa_train,
        embedding_cal=embedding_cal,
        kappa_cal=kappa_cal,
        trajectories_train=trajectories_train,
        trajectories_cal=trajectories_cal,
    )
    return _gate_from_rule(
        method,
        rule,
        model_hash=str(model_hash),
        groups_column=groups_column if cls.supports_groups else None,
        method_class=cls,
        representation=representation if cls.needs_embedding else None,
    )


def load_gate(
    path, *, model_hash: str | None = None, methods: Mapping[str, type[GateMethod]] = METHODS
) -> Gate:
    """Read a gate written by :meth:`Gate.save`; with ``model_hash``, check it matches.

    Files of the previous format ("safer-gate/1", without ``report_path`` and ``uncertainty``)
    load with both None. ``methods`` is the name map the gate's method is looked up in.

    Raises :class:`GateIntegrityError` when the file's content does not match its content hash
    (it was edited), or a field is missing, unknown or malformed; a file saved by a newer safer
    with fields unknown here is refused naming both versions.

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
    if not isinstance(raw, dict) or raw.get("format") not in _READABLE_FORMATS:
        raise SaferError(f"{path} is not a SAFER gate (format {_FORMAT}); re-run `safer calibrate`")
    raw.pop("format")
    saved_hash = raw.pop("content_hash", None)
    saved_by = raw.get("package_version")
    unknown = sorted(set(raw) - {f.name for f in fields(Gate)})
    if unknown:
        check_saved_version(saved_by if isinstance(saved_by, str) else None, unknown, str(path))
        raise GateIntegrityError(
            f"{path} (saved by safer {saved_by}) has fields {unknown} this version of safer "
            "does not know; upgrade safer or re-run `safer calibrate`"
        )
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise GateIntegrityError(
            f"{path} lacks the fields {missing} every gate has (damaged or edited); re-run "
            "`safer calibrate`"
        )
    if saved_hash is None:
        warnings.warn(
            f"{path} was saved before gate files carried a content hash, so edits to it cannot "
            "be detected; re-run `safer calibrate` to get a verifiable gate",
            GateIntegrityWarning,
            stacklevel=2,
        )
    elif saved_hash != _content_hash(raw):
        raise GateIntegrityError(
            f"{path}: the gate's content does not match its content hash (a method, level, "
            "threshold or calibration array was changed after it was saved); re-run "
            "`safer calibrate` instead of editing a gate"
        )
    try:
        cls = methods[raw.get("method")]
    except UnknownNameError as exc:
        raise UnknownNameError(f"{path}: {exc}; re-run `safer calibrate`") from None
    try:
        gate = _typed_gate(raw, cls)
        gate.__dict__["_method_cls"] = (gate.method, cls)
        gate.rule  # noqa: B018 - rebuild the method now, so a malformed state fails here
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise GateIntegrityError(
            f"{path}: malformed gate ({type(exc).__name__}: {exc}); re-run `safer calibrate`"
        ) from None
    if model_hash is not None:
        gate.check_model(model_hash)
    return gate


def _typed_gate(raw: dict, cls: type[GateMethod]) -> Gate:
    """A :class:`Gate` from a loaded file, its field types checked."""
    for name in ("model_hash", "calibration_hash", "method"):
        if not isinstance(raw[name], str):
            raise TypeError(f"{name} must be text, got {type(raw[name]).__name__}")
    for name in ("thresholds", "calibration"):
        if not isinstance(raw.get(name, {}), dict):
            raise TypeError(f"{name} must be a mapping, got {type(raw[name]).__name__}")
    if isinstance(raw["alpha"], bool) or not isinstance(raw["alpha"], (int, float)):
        raise TypeError(f"alpha must be a number, got {raw['alpha']!r}")
    check_alpha(raw["alpha"])
    for name in ("delta", "c"):
        value = raw.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise TypeError(f"{name} must be a number or null, got {value!r}")
    return Gate(**{**raw, "thresholds": cls.decode_thresholds(raw["thresholds"])})


def _gate_from_rule(
    method: str,
    rule: GateMethod,
    *,
    model_hash: str,
    groups_column: str | None,
    method_class: type[GateMethod],
    representation: str | None = None,
) -> Gate:
    state = rule.state_
    calibrated = {  # what was calibrated, on which data: the gate's calibration hash
        "method": method,
        "alpha": rule.alpha,
        "delta": state.delta,
        "c": state.c,
        "seed": rule.seed,
        "uncertainty": rule.uncertainty,
        "groups_column": groups_column,
        "data": state.calibration_hash,
    }
    gate = Gate(
        method=method,
        alpha=rule.alpha,
        model_hash=model_hash,
        calibration_hash=_digest(json.loads(dumps(calibrated)))[:16],
        thresholds=state.thresholds,
        delta=state.delta,
        c=state.c,
        groups_column=groups_column,
        seed=rule.seed,
        calibration=state.calibration,
        uncertainty=rule.uncertainty,
        options=state.options,
        representation=representation,
    )
    gate.__dict__["_method_cls"] = (method, method_class)
    gate.__dict__["_rule"] = (gate._rule_key(), rule)  # the conformalized rule itself
    return gate
