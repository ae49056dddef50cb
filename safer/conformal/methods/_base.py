"""The gate-method contract: what a conformal rule implements to become a gate.

A gate method is a small strategy object (as MAPIE's conformity scores are). Built with its
levels (``alpha``, and ``delta`` / ``c`` where it uses them), it

1. :meth:`~GateMethod.conformalize` s on the calibration split and returns a :class:`MethodState`:
   the JSON-ready thresholds plus the calibration arrays needed to rebuild it exactly;
2. :meth:`~GateMethod.decide` s on new decisions: a :class:`Verdict` of action (-1 = abstain),
   set (n, 25), reason in words and a score;
3. :meth:`~GateMethod.recalibrate` s at another alpha on the same calibration data;
4. states its :meth:`~GateMethod.promise` (plain words, a target and a direction) and scores its
   audited :meth:`~GateMethod.outcome` on test decisions (hit / counted in the denominator).

The public verbs validate inputs as the class flags say (``needs_labels``, ``needs_embedding``,
``needs_kappa``, ``needs_trajectories``, ``supports_groups``); a subclass implements the hooks
``_conformalize`` and ``_decide`` plus ``promise`` and ``outcome``. A method whose promise is
about a whole policy (its survival, not a per-decision rate) returns a :class:`PolicyEstimate`
from ``outcome`` instead of an :class:`Outcome`; settings beyond the levels travel in
``options`` (checked against the class's ``default_options``). :class:`safer.conformal.Gate`
keeps provenance and the state; :mod:`safer.conformal.report` asks the method for its promise
and outcome.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

from safer.actions import N_ACTIONS
from safer.conformal._checks import (
    ConformalInputError,
    array_hash,
    check_alpha,
    check_groups,
    check_labels,
    check_proba,
    check_vector,
)
from safer.errors import NotFittedError

__all__ = [
    "ABSTAIN",
    "UNCERTAINTY_KINDS",
    "CalibrationData",
    "GateMethod",
    "MethodState",
    "Outcome",
    "PolicyEstimate",
    "Promise",
    "Trajectories",
    "Verdict",
    "check_uncertainty_kind",
    "keep_labelled",
    "singleton_sets",
]

#: The action of a decision that carries no recommendation.
ABSTAIN = -1

#: The kinds of uncertainty a gate that reads kappa can be calibrated on (recorded in the gate).
UNCERTAINTY_KINDS: dict[str, str] = {
    "kappa": "kappa, SAFER's deceased-label uncertainty KL(p_base || p_survivor)",
    "entropy": "the predictive entropy of the model's 25 probabilities divided by log 25",
}

_DIRECTIONS = {"at_least": ">=", "at_most": "<="}


@dataclass
class MethodState:
    """What :meth:`GateMethod.conformalize` learns, JSON-ready (saved in the gate file).

    Attributes
    ----------
    thresholds : dict
        The learned thresholds (and counts) a reader of the gate file sees.
    calibration : dict
        The calibration arrays (as lists) the method needs to be rebuilt exactly.
    calibration_hash : str
        Hash of the calibration data (:func:`safer.conformal._checks.array_hash`).
    delta, c : float or None
        Levels resolved at calibration (LTT's delta, selection's cut-off c), else None.
    options : dict
        The method's settings beyond the levels, resolved (e.g. the safe gate's algorithm).

    Examples
    --------
    >>> from safer.conformal.methods import METHODS
    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet(np.full(25, 0.2), size=200); y = p.argmax(axis=1)
    >>> state = METHODS["lac"](alpha=0.1).conformalize(p, y)
    >>> state.thresholds["n_calibration"], len(state.calibration["y"]), state.delta
    (200, 200, None)
    >>> METHODS["lac"].from_state(state, alpha=0.1).decide(p[:3]).action.shape  # rebuilt
    (3,)
    """

    thresholds: dict
    calibration: dict
    calibration_hash: str
    delta: float | None = None
    c: float | None = None
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Trajectories:
    """Where each decision sits in its stay: what methods that learn from whole stays read.

    One entry per decision, aligned with the probabilities: the stay's id, the step, the
    clinicians' action and the stay's outcome (``died``, 0/1, repeated on its rows).

    Examples
    --------
    >>> t = Trajectories.of(stay=[5, 5, 9], step=[0, 1, 0], action=[3, 4, 0], died=[1, 1, 0])
    >>> len(t), t.subset(np.array([True, False, True])).stay.tolist()
    (3, [5, 9])
    """

    stay: np.ndarray
    step: np.ndarray
    action: np.ndarray
    died: np.ndarray

    @classmethod
    def of(cls, stay, step, action, died, n: int | None = None, name: str = "trajectories"):
        """Checked arrays (``n`` decisions when given)."""
        stay, step = np.asarray(stay), np.asarray(step, dtype=float)
        n = len(stay) if n is None else n
        act = check_labels(action, n, f"{name}.action")
        died = np.asarray(died, dtype=float)
        for label, arr in (("stay", stay), ("step", step), ("died", died)):
            if arr.shape != (n,):
                raise ConformalInputError(
                    f"{name}.{label} must have shape ({n},), one entry per decision"
                )
        if not np.all(np.isfinite(step)):
            raise ConformalInputError(f"{name}.step must be finite")
        if np.any((died != 0) & (died != 1)):
            raise ConformalInputError(f"{name}.died must be 0 or 1 (the stay's outcome)")
        return cls(stay, step, act, died.astype(np.int64))

    def __len__(self) -> int:
        return len(self.stay)

    def subset(self, mask: np.ndarray) -> Trajectories:
        return Trajectories(self.stay[mask], self.step[mask], self.action[mask], self.died[mask])


@dataclass(frozen=True)
class CalibrationData:
    """Calibration inputs after the checks the method's flags ask for (None where unused).

    ``embedding_*`` is the representation of each decision the method reads: the model's
    ``embed()`` by default, or another kind the gate records (see ``Gate.representation``).

    Examples
    --------
    :meth:`GateMethod.conformalize` builds one for the method's ``_conformalize``:

    >>> data = CalibrationData(proba=np.full((2, 25), 0.04), y=np.array([3, 4]))
    >>> data.y.tolist(), data.groups is None, data.trajectories_cal is None
    ([3, 4], True, True)
    """

    proba: np.ndarray
    y: np.ndarray | None = None
    groups: np.ndarray | None = None
    embedding_train: Any = None
    kappa_train: Any = None
    embedding_cal: Any = None
    kappa_cal: np.ndarray | None = None
    trajectories_train: Trajectories | None = None
    trajectories_cal: Trajectories | None = None


class Verdict(NamedTuple):
    """Per-decision output of :meth:`GateMethod.decide` (arrays of length n).

    Examples
    --------
    >>> from safer.conformal.methods import METHODS
    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet(np.full(25, 0.2), size=300); y = p.argmax(axis=1)
    >>> rule = METHODS["lac"](alpha=0.1); _ = rule.conformalize(p[:200], y[:200])
    >>> verdict = rule.decide(p[200:])
    >>> verdict.sets.shape, bool((verdict.action[~verdict.sets.any(axis=1)] == ABSTAIN).all())
    ((100, 25), True)
    """

    action: np.ndarray  # (n,) int: 0..24, or ABSTAIN
    sets: np.ndarray  # (n, 25) bool
    reason: np.ndarray  # (n,) str: words a clinician can read
    score: np.ndarray  # (n,) float: what the rule thresholded


@dataclass(frozen=True)
class Promise:
    """What a gate promises: its audited metric is ``direction`` ``target``, in plain words.

    Examples
    --------
    >>> p = Promise("coverage holds on average", target=0.9, direction="at_least")
    >>> p.bound, p.broken(ci_low=0.80, ci_high=0.85), p.broken(ci_low=0.88, ci_high=0.93)
    ('>= 0.9', True, False)
    """

    statement: str
    target: float
    direction: str  # "at_least" or "at_most"

    def __post_init__(self):
        if self.direction not in _DIRECTIONS:
            raise ConformalInputError(
                f"a promise's direction is one of {list(_DIRECTIONS)}, got {self.direction!r}"
            )

    @property
    def bound(self) -> str:
        """The promise as a short inequality, e.g. ``'>= 0.9'``."""
        return f"{_DIRECTIONS[self.direction]} {self.target:g}"

    def broken(self, ci_low: float, ci_high: float) -> bool:
        """Whether a confidence interval of the realised metric lies wholly on the wrong side."""
        if self.direction == "at_least":
            return bool(ci_high < self.target)
        return bool(ci_low > self.target)


@dataclass(frozen=True)
class Outcome:
    """The audited outcome of test decisions: the metric is ``hit[counted].mean()``.

    Examples
    --------
    >>> from safer.conformal.methods import METHODS
    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet(np.full(25, 0.2), size=300); y = p.argmax(axis=1)
    >>> rule = METHODS["aps"](alpha=0.1); _ = rule.conformalize(p[:200], y[:200])
    >>> out = rule.outcome(rule.decide(p[200:]), y[200:])
    >>> out.metric, bool(out.hit[out.counted].mean() >= 0.8)
    ('coverage', True)
    """

    hit: np.ndarray  # (n,) bool: the audited event happened for this decision
    counted: np.ndarray  # (n,) bool: the decision is in the denominator
    metric: str  # what hit[counted].mean() is, e.g. "coverage"


@dataclass(frozen=True)
class PolicyEstimate:
    """The audited outcome of a policy-level promise: an estimate with its interval.

    ``value`` is the realised metric (e.g. the survival gain over the clinicians, estimated on
    the test stays), ``ci_low`` / ``ci_high`` its interval at the report's confidence, ``n``
    the number of stays it rests on; ``details`` any further JSON-ready figures.

    Examples
    --------
    The safe gate's ``outcome`` returns one; the report checks it against the promise:

    >>> est = PolicyEstimate(0.03, ci_low=0.01, ci_high=0.05, n=400, metric="survival gain")
    >>> Promise("survival is not lowered", target=0.0, direction="at_least").broken(
    ...     est.ci_low, est.ci_high
    ... )
    False
    """

    value: float
    ci_low: float
    ci_high: float
    n: int
    metric: str
    details: dict = field(default_factory=dict)


class GateMethod(ABC):
    """Base of the gate methods (see the module docstring for the lifecycle).

    Parameters
    ----------
    alpha : float
        Level in (0, 1); checked here.
    delta : float or None
        Failure probability, for methods that have one (learn-then-test).
    c : float or None
        Uncertainty cut-off, for methods that threshold kappa (selection).
    seed : int
        Seed of any randomness in calibration (RAPS's hold-out split).
    uncertainty : {"kappa", "entropy"} or None
        Kind of the kappa a method that reads it is calibrated on (see
        :data:`UNCERTAINTY_KINDS`); ``None`` when not recorded or not read.

    Attributes
    ----------
    state_ : MethodState
        Set by :meth:`conformalize` (or :meth:`from_state`).

    Notes
    -----
    A subclass sets these class attributes:

    name : str
        Its name in :data:`safer.conformal.METHODS` (used in messages).
    needs_labels : bool
        ``conformalize`` needs ``y_cal``, the clinicians' actions.
    needs_embedding : bool
        ``conformalize`` needs ``embedding_train`` and ``embedding_cal``, ``decide`` needs
        ``embedding`` (the model's ``embed()`` of the decisions).
    needs_kappa : bool
        ``conformalize`` needs ``kappa_train`` and ``kappa_cal``; the audit needs the TRUE kappa.
    needs_trajectories : bool
        ``conformalize`` needs ``trajectories_train`` and ``trajectories_cal``
        (:class:`Trajectories`: stay, step, action and outcome of every decision); the audit
        needs those of the test decisions.
    default_options : dict
        The settings beyond the levels the method takes (name -> default); ``options`` given
        to the constructor must be among them.
    default_representation : str or None
        The kind of representation the decisions stage computes for ``embedding`` when the
        caller names none (None = the model's ``embed()``; see ``safer.models.representation``).
    supports_groups : bool
        Accepts per-decision groups (Mondrian calibration); others refuse them.
    guarantee : str
        The promise in plain words, for documentation (:meth:`promise` may specialise it).

    Examples
    --------
    >>> import numpy as np
    >>> from safer.conformal.methods import METHODS
    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet(np.full(25, 0.2), size=300); y = p.argmax(axis=1)
    >>> rule = METHODS["aps"](alpha=0.1)
    >>> state = rule.conformalize(p[:200], y[:200])
    >>> state.thresholds["n_calibration"], rule.decide(p[200:]).sets.shape
    (200, (100, 25))
    >>> rule.promise().bound
    '>= 0.9'
    """

    name: ClassVar[str] = ""
    needs_labels: ClassVar[bool] = True
    needs_embedding: ClassVar[bool] = False
    needs_kappa: ClassVar[bool] = False
    needs_trajectories: ClassVar[bool] = False
    default_options: ClassVar[dict] = {}
    default_representation: ClassVar[str | None] = None
    supports_groups: ClassVar[bool] = False
    guarantee: ClassVar[str] = ""

    def __init__(
        self,
        alpha: float,
        *,
        delta: float | None = None,
        c: float | None = None,
        seed: int = 0,
        uncertainty: str | None = None,
        options: dict | None = None,
    ):
        self.alpha = check_alpha(alpha)
        self.delta = delta
        self.c = c
        self.seed = seed
        self.uncertainty = uncertainty
        self.options = self.check_options(options)

    @classmethod
    def check_options(cls, options: dict | None) -> dict:
        """``options`` over the defaults; an unknown name is an error listing the known ones."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(cls.default_options))
        if unknown:
            known = ", ".join(cls.default_options) or "none"
            raise ConformalInputError(
                f"method {cls.name!r} has no option(s) {unknown}; its options: {known}"
            )
        return {**cls.default_options, **options}

    @classmethod
    def from_state(
        cls, state: MethodState, *, alpha: float, seed: int = 0, uncertainty: str | None = None
    ) -> GateMethod:
        """Rebuild a conformalized rule from a saved state (no recomputation of thresholds)."""
        rule = cls(
            alpha, delta=state.delta, c=state.c, seed=seed, uncertainty=uncertainty,
            options=state.options or None,
        )  # fmt: skip
        rule.state_ = state
        return rule

    @classmethod
    def decode_thresholds(cls, thresholds: dict) -> dict:
        """Thresholds as read back from JSON (e.g. ``null`` for infinity); default unchanged."""
        return thresholds

    # -- the verbs -------------------------------------------------------------------------------

    def conformalize(
        self,
        proba_cal,
        y_cal=None,
        *,
        groups_cal=None,
        embedding_train=None,
        kappa_train=None,
        embedding_cal=None,
        kappa_cal=None,
        trajectories_train: Trajectories | None = None,
        trajectories_cal: Trajectories | None = None,
    ) -> MethodState:
        """Calibrate on the calibration split (and, for the ridge of selection or a policy
        learned from whole stays, a disjoint training split); returns the JSON-ready
        :class:`MethodState` (also ``self.state_``)."""
        P = check_proba(proba_cal, "proba_cal")
        side = {
            "embedding_train": (embedding_train, self.needs_embedding),
            "kappa_train": (kappa_train, self.needs_kappa),
            "embedding_cal": (embedding_cal, self.needs_embedding),
            "kappa_cal": (kappa_cal, self.needs_kappa),
            "trajectories_train": (trajectories_train, self.needs_trajectories),
            "trajectories_cal": (trajectories_cal, self.needs_trajectories),
        }
        for name, (value, needed) in side.items():
            if needed and value is None:
                raise ConformalInputError(f"method {self.name!r} needs {name}")
        if self.needs_trajectories and len(trajectories_cal) != len(P):
            raise ConformalInputError(
                f"trajectories_cal has {len(trajectories_cal)} decisions but proba_cal has "
                f"{len(P)}; pass the same calibration decisions"
            )
        kappa = check_vector(kappa_cal, len(P), "kappa_cal") if self.needs_kappa else None
        y = None
        if self.needs_labels:
            if y_cal is None:
                raise ConformalInputError(
                    f"method {self.name!r} needs y_cal, the clinicians' actions"
                )
            y = check_labels(y_cal, len(P), "y_cal")
        groups = None
        if groups_cal is not None:
            if not self.supports_groups:
                raise ConformalInputError(
                    f"groups (Mondrian calibration) apply to methods {_grouped_methods()}, not "
                    f"{self.name!r}; calibrate without groups or pick one of those"
                )
            groups = check_groups(groups_cal, len(P), "groups_cal")
        data = CalibrationData(
            proba=P,
            y=y,
            groups=groups,
            embedding_train=embedding_train if self.needs_embedding else None,
            kappa_train=kappa_train if self.needs_kappa else None,
            embedding_cal=embedding_cal if self.needs_embedding else None,
            kappa_cal=kappa,
            trajectories_train=trajectories_train if self.needs_trajectories else None,
            trajectories_cal=trajectories_cal if self.needs_trajectories else None,
        )
        state = self._conformalize(data)
        if not state.options and self.options:
            state.options = dict(self.options)
        self.state_ = state
        return self.state_

    def decide(self, proba, *, embedding=None, groups=None) -> Verdict:
        """Recommend an action or abstain for each row of ``proba`` (n, 25)."""
        self._state()
        P = check_proba(proba)
        if self.needs_embedding and embedding is None:
            raise ConformalInputError(
                f"the {self.name} gate needs embedding= (the model's embed() of these decisions)"
            )
        return self._decide(P, embedding=embedding, groups=groups)

    def recalibrate(self, alpha: float) -> GateMethod:
        """The same method on the same calibration data at another ``alpha``.

        The default re-runs :meth:`conformalize` on the arrays that :func:`keep_labelled`
        stored ("proba", "y", "groups"); a method that keeps other arrays overrides it.
        """
        state = self._state()
        cal = state.calibration
        rule = type(self)(
            alpha, delta=state.delta, seed=self.seed, uncertainty=self.uncertainty,
            options=state.options or None,
        )  # fmt: skip
        groups = cal.get("groups")
        rule.conformalize(
            np.asarray(cal["proba"]),
            np.asarray(cal["y"]),
            groups_cal=None if groups is None else np.asarray(groups),
        )
        return rule

    # -- what a method implements -----------------------------------------------------------------

    @abstractmethod
    def _conformalize(self, data: CalibrationData) -> MethodState:
        """Learn thresholds from checked calibration data."""

    @abstractmethod
    def _decide(self, proba: np.ndarray, *, embedding, groups) -> Verdict:
        """Decisions for checked probabilities (``self.state_`` is set)."""

    @property
    def abstains_everywhere(self) -> bool:
        """Whether this calibrated rule abstains on every input, whatever the probabilities
        (e.g. a safe gate whose held-out test certified nothing). ``False`` unless a method
        knows it from its state."""
        return False

    @abstractmethod
    def promise(self) -> Promise:
        """What this rule promises, at its alpha (and delta, c)."""

    @abstractmethod
    def outcome(
        self, decisions, y: np.ndarray, kappa: np.ndarray | None = None
    ) -> Outcome | PolicyEstimate:
        """Per test decision: whether the audited event happened, and whether it counts.

        ``decisions`` has ``action`` (n,) and ``sets`` (n, 25) (a :class:`Verdict` or
        :class:`safer.conformal.Decisions`); ``y`` the clinicians' actions; ``kappa`` the TRUE
        uncertainty (given when ``needs_kappa``). A method with ``needs_trajectories`` is also
        given ``embedding=`` and ``trajectories=`` (the test decisions' :class:`Trajectories`)
        and ``within=`` (a boolean mask: the subgroup whose decisions are audited, all by
        default), and returns a :class:`PolicyEstimate`.
        """

    # -- helpers -----------------------------------------------------------------------------------

    def _state(self) -> MethodState:
        state = getattr(self, "state_", None)
        if state is None:
            raise NotFittedError(
                f"{type(self).__name__} is not conformalized: call conformalize first"
            )
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha!r})"


def keep_labelled(data: CalibrationData) -> tuple[dict, str]:
    """The calibration arrays of a labelled method, JSON-ready, and their hash.

    Examples
    --------
    >>> import numpy as np
    >>> data = CalibrationData(proba=np.full((2, 25), 0.04), y=np.array([3, 4]))
    >>> cal, digest = keep_labelled(data)
    >>> sorted(cal), cal["y"], len(digest)
    (['groups', 'proba', 'y'], [3, 4], 16)
    """
    groups = data.groups
    calibration = {
        "proba": data.proba.tolist(),
        "y": data.y.tolist(),
        "groups": None if groups is None else groups.tolist(),
    }
    return calibration, array_hash(data.proba, data.y, groups)


def singleton_sets(action: np.ndarray) -> np.ndarray:
    """(n, 25) sets holding only the recommended action; empty rows where it abstains.

    Examples
    --------
    >>> import numpy as np
    >>> singleton_sets(np.array([2, ABSTAIN])).sum(axis=1).tolist()
    [1, 0]
    """
    sets = np.zeros((len(action), N_ACTIONS), dtype=bool)
    rows = np.flatnonzero(action >= 0)
    sets[rows, action[rows]] = True
    return sets


def check_uncertainty_kind(kind: str | None) -> str | None:
    """``kind`` if it is ``None`` or a key of :data:`UNCERTAINTY_KINDS`, else an error.

    Examples
    --------
    >>> check_uncertainty_kind("entropy")
    'entropy'
    """
    if kind is None or kind in UNCERTAINTY_KINDS:
        return kind
    raise ConformalInputError(
        f"unknown uncertainty kind {kind!r}; known: {', '.join(UNCERTAINTY_KINDS)} "
        "(a model names its kind in uncertainty_kind)"
    )


def _grouped_methods() -> str:
    from safer.conformal.methods import METHODS

    return ", ".join(name for name, cls in METHODS.items() if cls.supports_groups)
