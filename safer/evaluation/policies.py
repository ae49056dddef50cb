"""Treatment policies: from a stay's history (its cohort rows so far) to the next action.

A policy (the small :class:`Policy` protocol) answers one question, "what dose for the next 4
hours?", for a batch of stays at once: ``policy.decide(histories)`` takes the rows of several
stays up to now and returns one action per stay (stays in increasing ``stay_id``);
:func:`act_batch` and :func:`act` are the shortcuts to its actions. For off-policy evaluation,
``probabilities(rows)`` gives the policy's action distribution at every logged row.

Three kinds of policy:

- **state-based** (``clinician``, ``clinician-mode``, ``random``, ``optimal``) read the simulator's
  hidden ``true_state`` column (``needs_true_state = True``, except ``random``) and carry their
  ``(716, 25)`` ``matrix``, so their mortality can also be computed exactly;
- **model-based** (``model:DIR``, ``gated:DIR:GATE``) see only :func:`safer.cohorts.model_columns`
  (never ``true_*``) — what a deployed recommender sees. The gated policy follows the recommender
  where the conformal gate recommends and defers where it abstains: in simulation to the
  clinicians' policy at the true state (so it, too, needs the true state), on real data to
- the **logged** action (:class:`LoggedActionPolicy`): what the clinicians actually charted,
  readable on logged rows only.

Examples
--------
>>> from safer.cohorts import simulate_cohort
>>> from safer.evaluation.policies import make_policy
>>> cohort = simulate_cohort(n_stays=3, seed=0, progress=False)
>>> act_batch(make_policy("clinician-mode"), cohort[cohort.step == 0]).shape
(3,)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from safer._registry import Registry
from safer.actions import N_ACTIONS
from safer.cohorts.schema import model_frame
from safer.cohorts.simulated import DEATH, N_PATIENT_STATES, SURVIVAL, IcuSepsisMDP, load_mdp
from safer.errors import SaferError

__all__ = [
    "POLICY_NAMES",
    "Policy",
    "DeferringPolicy",
    "PolicyDecision",
    "StatePolicy",
    "LoggedActionPolicy",
    "ModelPolicy",
    "GatedPolicy",
    "PartialAdherence",
    "act",
    "act_batch",
    "clinician_policy",
    "clinician_mode_policy",
    "random_policy",
    "optimal_policy",
    "value_iteration",
    "make_policy",
    "last_rows",
]

POLICY_NAMES = (
    "clinician",
    "clinician-mode",
    "random",
    "optimal",
    "logged",
    "model:DIR",
    "gated:DIR:GATE",
)


class PolicyError(SaferError, ValueError):
    """A policy was asked for something it cannot do (unknown name, missing column)."""


@dataclass
class PolicyDecision:
    """One decision per stay: the action and whether the policy deferred to the clinician."""

    stay_ids: np.ndarray
    actions: np.ndarray
    deferred: np.ndarray


def last_rows(histories: pd.DataFrame) -> pd.DataFrame:
    """The current (latest-step) row of every stay, in increasing ``stay_id``."""
    for col in ("stay_id", "step"):
        if col not in histories.columns:
            raise PolicyError(f"histories need a '{col}' column (a cohort table's rows)")
    ordered = histories.sort_values(["stay_id", "step"], kind="stable")
    is_last = ordered["stay_id"].to_numpy() != np.roll(ordered["stay_id"].to_numpy(), -1)
    if len(is_last):
        is_last[-1] = True
    return ordered[is_last]


@runtime_checkable
class Policy(Protocol):
    """What a policy is: a name, one action per stay for its current step, and its action
    distribution at logged rows (what off-policy evaluation reads).

    ``decide(histories, rng)`` takes the rows of several stays up to now (a cohort table's rows)
    and returns a :class:`PolicyDecision` for the latest step of each (stays in increasing
    ``stay_id``); ``probabilities(rows)`` gives the ``(n_rows, 25)`` action distribution at every
    row, each row with its stay's history. Any object with these is a policy: the classes below,
    or a researcher's own.

    Examples
    --------
    A researcher's own policy, "no fluid, no vasopressor", checked against the protocol:

    >>> class NoTreatment:
    ...     name = "no treatment"
    ...     def decide(self, histories, rng=None):
    ...         stays = last_rows(histories)["stay_id"].to_numpy()
    ...         zeros = np.zeros(len(stays), dtype=int)
    ...         return PolicyDecision(stays, zeros, zeros.astype(bool))
    ...     def probabilities(self, rows):
    ...         return np.eye(25)[np.zeros(len(rows), dtype=int)]
    >>> from safer.cohorts import simulate_cohort
    >>> cohort = simulate_cohort(n_stays=3, seed=0, progress=False)
    >>> isinstance(NoTreatment(), Policy), act_batch(NoTreatment(), cohort).tolist()
    (True, [0, 0, 0])
    """

    name: str

    def decide(
        self, histories: pd.DataFrame, rng: np.random.Generator | None = None
    ) -> PolicyDecision: ...

    def probabilities(self, rows: pd.DataFrame) -> np.ndarray: ...


@runtime_checkable
class DeferringPolicy(Policy, Protocol):
    """A policy that hands some decisions to someone else (a gated recommender): it also says
    at which logged rows it defers, so its abstention can be measured and, off-policy, the
    deferred rows follow the logged behaviour."""

    def deferred_rows(self, rows: pd.DataFrame) -> np.ndarray: ...


def act_batch(
    policy: Policy, histories: pd.DataFrame, rng: np.random.Generator | None = None
) -> np.ndarray:
    """One action per stay (increasing ``stay_id``) for the stays' current step."""
    return policy.decide(histories, rng).actions


def act(policy: Policy, history: pd.DataFrame, rng: np.random.Generator | None = None) -> int:
    """The action for one stay's current step, given its rows so far.

    >>> from safer.cohorts import simulate_cohort
    >>> stay = simulate_cohort(n_stays=1, seed=0, progress=False)
    >>> 0 <= act(make_policy("clinician-mode"), stay) < 25
    True
    """
    if history["stay_id"].nunique() != 1:
        raise PolicyError("act() takes the rows of one stay; use act_batch() for several")
    return int(act_batch(policy, history, rng)[0])


class StatePolicy:
    """A policy given as action probabilities per true MDP state.

    Parameters
    ----------
    matrix : ndarray (713 or 716, 25)
        Row ``s`` is the action distribution in patient state ``s``.
    name : str
    needs_true_state : bool
        ``False`` only when every row is the same (the policy ignores the state).

    Examples
    --------
    >>> import numpy as np
    >>> policy = StatePolicy(np.full((713, 25), 1 / 25), "random", needs_true_state=False)
    >>> policy.matrix.shape
    (716, 25)
    """

    def __init__(self, matrix: np.ndarray, name: str, *, needs_true_state: bool = True):
        mdp = load_mdp()
        rows = mdp.check_policy(matrix)
        full = np.zeros((mdp.n_states, N_ACTIONS))
        full[:N_PATIENT_STATES] = rows
        full[N_PATIENT_STATES:] = 1.0 / N_ACTIONS  # terminal states: never acted on
        self.matrix = full
        self.name = name
        self.needs_true_state = needs_true_state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    @property
    def deterministic(self) -> bool:
        return bool(np.all(self.matrix[:N_PATIENT_STATES].max(axis=1) == 1.0))

    def _states(self, rows: pd.DataFrame) -> np.ndarray:
        if not self.needs_true_state:
            return np.zeros(len(rows), dtype=np.int64)
        if "true_state" not in rows.columns:
            raise PolicyError(
                f"policy '{self.name}' acts on the simulator's hidden true state, and these rows "
                "have no 'true_state' column: use it on a simulated cohort "
                "(safer.cohorts.simulate_cohort) or in a rollout (safer.evaluation.mortality)"
            )
        states = rows["true_state"].to_numpy(dtype=np.int64)
        if np.any((states < 0) | (states >= N_PATIENT_STATES)):
            raise PolicyError(f"true_state must be a patient state 0..{N_PATIENT_STATES - 1}")
        return states

    def decide(
        self, histories: pd.DataFrame, rng: np.random.Generator | None = None
    ) -> PolicyDecision:
        current = last_rows(histories)
        states = self._states(current)
        if self.deterministic:
            actions = self.matrix[states].argmax(axis=1)
        else:
            if rng is None:
                raise PolicyError(f"policy '{self.name}' samples its action: pass rng=")
            actions = _sample_rows(self.matrix[states], rng)
        return PolicyDecision(
            current["stay_id"].to_numpy(), actions.astype(np.int64), np.zeros(len(states), bool)
        )

    def probabilities(self, rows: pd.DataFrame) -> np.ndarray:
        return self.matrix[self._states(rows)]


def _sample_rows(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None] * cum[:, -1:]
    return np.minimum((cum < u).sum(axis=1), N_ACTIONS - 1)


def clinician_policy(mdp: IcuSepsisMDP | None = None) -> StatePolicy:
    """The clinicians' policy shipped with ICU-Sepsis, sampled at the true state."""
    mdp = mdp or load_mdp()
    return StatePolicy(mdp.expert_policy[:N_PATIENT_STATES], "clinician")


def clinician_mode_policy(mdp: IcuSepsisMDP | None = None) -> StatePolicy:
    """The clinicians' most likely action in each true state."""
    mdp = mdp or load_mdp()
    mode = mdp.expert_policy[:N_PATIENT_STATES].argmax(axis=1)
    return StatePolicy(np.eye(N_ACTIONS)[mode], "clinician-mode")


def random_policy() -> StatePolicy:
    """Uniform over the 25 actions, whatever the state."""
    return StatePolicy(
        np.full((N_PATIENT_STATES, N_ACTIONS), 1.0 / N_ACTIONS), "random", needs_true_state=False
    )


def value_iteration(
    mdp: IcuSepsisMDP | None = None,
    *,
    allowed: np.ndarray | None = None,
    tol: float = 1e-12,
    max_iter: int = 10_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Survival-maximising values by value iteration (reward 1 on survival, no discount).

    ``allowed`` (716, 25) bool, optional, restricts the maximum to those actions in each state
    (every state needs at least one).

    Returns
    -------
    values : ndarray (716,)
        Highest achievable survival probability from each state.
    q : ndarray (716, 25)
        Survival probability of each action, then acting optimally.

    Examples
    --------
    >>> values, q = value_iteration()
    >>> round(1 - float(load_mdp().initial @ values), 3)  # the optimal policy's mortality
    0.125
    """
    mdp = mdp or load_mdp()
    values = np.zeros(mdp.n_states)
    values[SURVIVAL] = 1.0
    terminal = np.arange(N_PATIENT_STATES, mdp.n_states)
    fixed = np.where(terminal == SURVIVAL, 1.0, 0.0)
    for _ in range(max_iter):
        q = mdp.transitions @ values  # (716, 25)
        new = (q if allowed is None else np.where(allowed, q, -np.inf)).max(axis=1)
        new[terminal] = fixed
        gap = np.abs(new - values).max()
        values = new
        if gap < tol:
            break
    else:
        raise SaferError(f"value iteration did not converge in {max_iter} sweeps (tol={tol})")
    values[DEATH] = 0.0
    return values, mdp.transitions @ values


def optimal_policy(mdp: IcuSepsisMDP | None = None) -> StatePolicy:
    """The survival-maximising policy of the known MDP: an upper bound for any policy."""
    mdp = mdp or load_mdp()
    _, q = value_iteration(mdp)
    best = q[:N_PATIENT_STATES].argmax(axis=1)
    return StatePolicy(np.eye(N_ACTIONS)[best], "optimal")


class LoggedActionPolicy:
    """The action the clinicians actually charted at each row: current practice as logged.

    What a gated policy defers to on real data, where there is no simulator and no hidden
    state. It reads the current row's ``action`` column, so it only runs on logged rows (a
    cohort table), never in a rollout, where no action has been charted yet.

    Examples
    --------
    >>> from safer.cohorts import simulate_cohort
    >>> cohort = simulate_cohort(n_stays=2, seed=0, progress=False)
    >>> first = cohort[cohort.step == 0]
    >>> (act_batch(LoggedActionPolicy(), first) == first["action"].to_numpy()).all()
    np.True_
    """

    name = "logged"
    needs_true_state = False

    def decide(
        self, histories: pd.DataFrame, rng: np.random.Generator | None = None
    ) -> PolicyDecision:
        current = last_rows(histories)
        return PolicyDecision(
            current["stay_id"].to_numpy(), self._actions(current), np.zeros(len(current), bool)
        )

    def probabilities(self, rows: pd.DataFrame) -> np.ndarray:
        return np.eye(N_ACTIONS)[self._actions(rows)]

    def _actions(self, rows: pd.DataFrame) -> np.ndarray:
        if "action" not in rows.columns:
            raise PolicyError("the logged-action policy needs the rows' charted 'action' column")
        actions = rows["action"].to_numpy()
        if np.any((actions < 0) | (actions >= N_ACTIONS)):
            raise PolicyError(
                "the logged-action policy needs a charted action 0..24 at every row it acts "
                "on; it cannot act in a rollout, where nothing has been charted yet"
            )
        return actions.astype(np.int64)

    def __repr__(self) -> str:
        return "LoggedActionPolicy()"


class ModelPolicy:
    """Argmax of a trained recommender's ``predict_proba``; sees only model columns.

    Parameters
    ----------
    model : object
        Anything with ``predict_proba(cohort_rows) -> (n_rows, 25)`` where row ``i`` uses its
        stay's rows up to its step (e.g. what :func:`safer.models.load_model` returns).
    name : str

    Examples
    --------
    >>> class Always3:  # any object with predict_proba works
    ...     def predict_proba(self, rows):
    ...         return np.eye(25)[np.full(len(rows), 3)]
    >>> from safer.cohorts import simulate_cohort
    >>> cohort = simulate_cohort(n_stays=2, seed=0, progress=False)
    >>> act_batch(ModelPolicy(Always3()), cohort).tolist()
    [3, 3]
    """

    needs_true_state = False

    def __init__(self, model: Any, name: str = "model"):
        if not hasattr(model, "predict_proba"):
            raise PolicyError("a model policy needs an object with predict_proba(cohort_rows)")
        self.model = model
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    @classmethod
    def from_dir(cls, path: str | Path) -> ModelPolicy:
        """Load a recommender saved by ``safer train`` (``safer.models.load_model``)."""
        return cls(_load_model(path), name=f"model:{path}")

    def _proba(self, rows: pd.DataFrame) -> np.ndarray:
        visible = model_frame(rows)
        proba = np.asarray(self.model.predict_proba(visible), dtype=float)
        if proba.shape != (len(rows), N_ACTIONS):
            raise PolicyError(
                f"model.predict_proba returned shape {proba.shape}; expected "
                f"({len(rows)}, {N_ACTIONS}), one row of action probabilities per cohort row"
            )
        return proba

    def _current(self, histories: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        ordered = histories.sort_values(["stay_id", "step"], kind="stable")
        proba = self._proba(ordered)
        ids = ordered["stay_id"].to_numpy()
        is_last = ids != np.roll(ids, -1)
        is_last[-1] = True
        return ordered, proba, is_last

    def decide(
        self, histories: pd.DataFrame, rng: np.random.Generator | None = None
    ) -> PolicyDecision:
        ordered, proba, is_last = self._current(histories)
        actions = proba[is_last].argmax(axis=1).astype(np.int64)
        ids = ordered["stay_id"].to_numpy()[is_last]
        return PolicyDecision(ids, actions, np.zeros(len(ids), dtype=bool))

    def probabilities(self, rows: pd.DataFrame) -> np.ndarray:
        return np.eye(N_ACTIONS)[self._proba(rows).argmax(axis=1)]


class GatedPolicy(ModelPolicy):
    """The recommender where its conformal gate recommends, someone else where it abstains.

    Decisions go through :func:`safer.decisions.decide`, so the gate is always checked against
    the model (a gate calibrated for another model is refused).

    Parameters
    ----------
    model : object
        A fitted recommender (:func:`safer.models.load_model`).
    gate : safer.conformal.Gate
        Its calibrated gate (:func:`safer.conformal.load_gate`).
    defer_to : Policy, optional
        Who decides where the gate abstains: by default the clinicians' policy at the
        simulator's true state (rollouts on the embedded cohort); on real data
        :class:`LoggedActionPolicy`, the action actually charted.
    name : str
    """

    def __init__(self, model: Any, gate: Any, defer_to: Policy | None = None, name: str = "gated"):
        super().__init__(model, name)
        if not hasattr(gate, "decide"):
            raise PolicyError("a gated policy needs a gate with decide(proba, embedding=...)")
        self.gate = gate
        self.defer_to = defer_to if defer_to is not None else clinician_policy()
        self.needs_true_state = bool(getattr(self.defer_to, "needs_true_state", False))

    @classmethod
    def from_paths(
        cls, model_dir: str | Path, gate_path: str | Path, defer_to: Policy | None = None
    ) -> GatedPolicy:
        """Load a recommender and its gate (``safer train`` / ``safer calibrate``); a gate
        calibrated for another model is refused here."""
        from safer.conformal import load_gate

        model = _load_model(model_dir)
        gate = load_gate(gate_path, model_hash=model.content_hash_)
        return cls(model, gate, defer_to, name=f"gated:{model_dir}:{gate_path}")

    def _gate_actions(self, rows: pd.DataFrame, proba: np.ndarray, current=None) -> np.ndarray:
        from safer.decisions import decide

        decisions = decide(self.model, self.gate, rows, proba=proba, current=current)
        return np.asarray(decisions.action, dtype=np.int64)

    def decide(
        self, histories: pd.DataFrame, rng: np.random.Generator | None = None
    ) -> PolicyDecision:
        ordered, proba, is_last = self._current(histories)
        gated = self._gate_actions(ordered, proba, is_last)
        current = ordered[is_last]
        abstain = gated < 0
        actions = gated.copy()
        if abstain.any():
            actions[abstain] = self.defer_to.decide(current[abstain], rng).actions
        return PolicyDecision(current["stay_id"].to_numpy(), actions, abstain)

    def deferred_rows(self, rows: pd.DataFrame) -> np.ndarray:
        return self._gate_actions(rows, self._proba(rows)) < 0

    def exact_equivalent(self) -> StatePolicy | None:
        """The state policy this one equals exactly, if any: its fallback when the gate
        abstains everywhere (so its mortality can be solved, not sampled)."""
        if self.gate.abstains_everywhere and isinstance(self.defer_to, StatePolicy):
            return self.defer_to
        return None

    def probabilities(self, rows: pd.DataFrame) -> np.ndarray:
        gated = self._gate_actions(rows, self._proba(rows))
        out = np.eye(N_ACTIONS)[np.maximum(gated, 0)]
        abstain = gated < 0
        if abstain.any():
            out[abstain] = self.defer_to.probabilities(rows[abstain])
        return out


class PartialAdherence:
    """A gated policy whose recommendations are followed only part of the time.

    Where the gate recommends, the clinician follows with probability ``adherence`` and
    otherwise gives usual care (the gated policy's ``defer_to``); where it defers, usual care.
    ``adherence=1`` is the gated policy itself. Clinical decision-support studies report
    outcomes at the adherence they observed; this lets a benchmark report several.

    Examples
    --------
    >>> from unittest.mock import create_autospec
    >>> gated = create_autospec(GatedPolicy, instance=True)
    >>> PartialAdherence(gated, 0.25).name
    'gated, 25% adherence'
    """

    needs_true_state = True

    def __init__(self, gated: GatedPolicy, adherence: float, name: str | None = None):
        if not 0.0 <= adherence <= 1.0:
            raise PolicyError(f"adherence is a probability in [0, 1], got {adherence}")
        self.gated = gated
        self.adherence = float(adherence)
        self.name = name or f"gated, {100 * adherence:.0f}% adherence"
        self.needs_true_state = bool(getattr(gated, "needs_true_state", False))

    def decide(
        self, histories: pd.DataFrame, rng: np.random.Generator | None = None
    ) -> PolicyDecision:
        if rng is None:
            raise PolicyError(f"policy '{self.name}' draws who follows: pass rng=")
        decision = self.gated.decide(histories, rng)
        ignored = ~decision.deferred & (rng.random(len(decision.actions)) >= self.adherence)
        actions = decision.actions.copy()
        if ignored.any():
            current = last_rows(histories)
            actions[ignored] = self.gated.defer_to.decide(current[ignored], rng).actions
        return PolicyDecision(decision.stay_ids, actions, decision.deferred | ignored)

    def deferred_rows(self, rows: pd.DataFrame) -> np.ndarray:
        return self.gated.deferred_rows(rows)

    def probabilities(self, rows: pd.DataFrame) -> np.ndarray:
        gated = self.gated.probabilities(rows)
        usual = self.gated.defer_to.probabilities(rows)
        acting = ~self.gated.deferred_rows(rows)
        mixed = self.adherence * gated + (1.0 - self.adherence) * usual
        return np.where(acting[:, None], mixed, usual)

    def __repr__(self) -> str:
        return f"PartialAdherence({self.gated!r}, {self.adherence})"


def _load_model(path: str | Path) -> Any:
    from safer.models import load_model

    return load_model(path)


_NAMED_POLICIES = Registry(
    "policy",
    {
        "clinician": clinician_policy,
        "clinician-mode": clinician_mode_policy,
        "random": random_policy,
        "optimal": optimal_policy,
        "logged": LoggedActionPolicy,
    },
)


def make_policy(spec: str, *, defer_to: Policy | None = None) -> Policy:
    """Build a policy from its CLI spec.

    Parameters
    ----------
    spec : str
        One of ``clinician``, ``clinician-mode``, ``random``, ``optimal``, ``logged`` (the
        charted action; logged rows only), ``model:DIR``, ``gated:DIR:GATE`` (deferring to the
        simulator's clinicians, or to ``defer_to``).
    defer_to : Policy, optional
        Who a gated policy defers to where its gate abstains (default: the simulator's
        clinicians); on real data ``LoggedActionPolicy()``.

    Examples
    --------
    >>> make_policy("optimal").name
    'optimal'
    """
    spec = spec.strip()
    if spec in _NAMED_POLICIES:
        return _NAMED_POLICIES[spec]()
    kind, _, rest = spec.partition(":")
    if kind == "model" and rest:
        return ModelPolicy.from_dir(rest)
    if kind == "gated" and ":" in rest:
        model_dir, _, gate = rest.rpartition(":")
        if model_dir and gate:
            return GatedPolicy.from_paths(model_dir, gate, defer_to)
    raise PolicyError(f"unknown policy {spec!r}; known policies: {', '.join(POLICY_NAMES)}")
