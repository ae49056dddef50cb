"""How low can a policy learned from N logged stays bring true mortality? An oracle ceiling.

Every model in the DTR benchmark sees noisy EHR-like rows. This module asks a simpler question
that bounds them all from below: give a learner the **true MDP state** of every logged decision
(the hidden ``true_state`` column of a simulated cohort, which no model may read) and let it
estimate, from the same logged stays only, the clinicians' policy and the transition model by
counting. What is the exact mortality of the best policies it can build from those estimates?

Policies, each evaluated exactly on the true ICU-Sepsis MDP (no rollout noise):

``imitation``
    The most frequent logged action of each state: a perfect imitator of the clinicians' mode.
``one-step``
    One step of policy improvement on the estimated model: in each state, the action with the
    highest estimated survival ``Q(s, a) = sum_s' P_hat(s' | s, a) V_hat(s')`` among the actions
    the clinicians took there at least ``support`` times as often as their most frequent one,
    where ``V_hat`` is the estimated clinicians' survival. Outcome-aware, but it never leaves the
    clinicians' support and trusts the data for one step only.
``value-iteration``
    Support-constrained value iteration on the estimated model (tabular batch-constrained
    offline RL). Reported with the mortality the estimated model *predicts* for it, which shows
    how optimistic an offline value estimate is.

In states never seen in the data every policy defers to the clinicians' policy. The result is a
reference point for models acting on observations, which carry less than the true state (not a
strict bound: a network can share strength across similar states where counting cannot); it is
an analysis tool, never a recommender.

Examples
--------
>>> from safer.cohorts import simulate_cohort
>>> result = oracle_ceiling(simulate_cohort(n_stays=200, seed=0, progress=False))
>>> sorted(result.mortality)
['clinicians', 'imitation', 'one-step', 'optimal', 'value-iteration']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from safer.actions import N_ACTIONS
from safer.cohorts.simulated import DEATH, N_PATIENT_STATES, SURVIVAL, IcuSepsisMDP, load_mdp
from safer.conformal.spi.tabular import Episodes, TabularModel, greedy, one_hot, survival_values
from safer.errors import SaferError
from safer.evaluation.policies import value_iteration

__all__ = ["CeilingResult", "oracle_ceiling", "one_step_improvement"]

_NEEDED = ("stay_id", "step", "action", "died", "true_state")


@dataclass(frozen=True)
class CeilingResult:
    """Exact mortality (fractions) of the oracle policies learned from one logged cohort.

    Attributes
    ----------
    stays, decisions : int
        Size of the logged data.
    states_seen : int
        Patient states with at least one logged decision.
    mortality : dict
        Policy name -> exact mortality on the true MDP (``clinicians`` and ``optimal`` are the
        references).
    estimated : dict
        Policy name -> mortality that the *estimated* model predicts for that policy.
    """

    stays: int
    decisions: int
    states_seen: int
    mortality: dict[str, float]
    estimated: dict[str, float]


def oracle_ceiling(
    cohort: pd.DataFrame, *, support: float = 0.2, mdp: IcuSepsisMDP | None = None
) -> CeilingResult:
    """Learn tabular policies from the true states of ``cohort`` and evaluate them exactly.

    Parameters
    ----------
    cohort : DataFrame
        A simulated cohort (``safer cohort simulate``) with its hidden ``true_state`` column.
    support : float
        An action is in the clinicians' support at a state when it was logged there at least
        ``support`` times as often as the most frequent action (0 < support <= 1).
    mdp : IcuSepsisMDP, optional
        The true MDP (default: ICU-Sepsis).

    Examples
    --------
    >>> oracle_ceiling(pd.DataFrame({"stay_id": [1]}))
    Traceback (most recent call last):
    ...
    safer.errors.SaferError: the oracle ceiling needs a simulated cohort with columns ['step', \
'action', 'died', 'true_state'] (the hidden true_state is written by `safer cohort simulate`)
    """
    missing = [c for c in _NEEDED if c not in cohort.columns]
    if missing:
        raise SaferError(
            f"the oracle ceiling needs a simulated cohort with columns {missing} (the hidden "
            "true_state is written by `safer cohort simulate`)"
        )
    if not 0.0 < support <= 1.0:
        raise SaferError(f"support must be in (0, 1], got {support}")
    if cohort.empty:
        raise SaferError("the cohort has no rows")
    mdp = mdp or load_mdp()
    tabular = TabularModel(_episodes(cohort))
    n_sa = _pad(tabular.n_sa)  # (716, 25)
    n_s = n_sa.sum(axis=1)  # (716,)
    seen = n_s[:N_PATIENT_STATES] > 0
    behaviour = _behaviour(tabular, mdp)
    model = _estimated_transitions(tabular, mdp)
    allowed = _support(n_sa, behaviour, support)

    imitation = one_hot(np.where(seen, n_sa[:N_PATIENT_STATES].argmax(1), 0))
    imitation[~seen] = mdp.expert_policy[:N_PATIENT_STATES][~seen]
    one_step = one_step_improvement(model, behaviour, allowed)
    one_step[~seen] = mdp.expert_policy[:N_PATIENT_STATES][~seen]
    estimated_mdp = IcuSepsisMDP(
        model, mdp.initial, behaviour, mdp.centers, mdp.sofa, mdp.admissible
    )
    _, q = value_iteration(estimated_mdp, allowed=allowed)
    vi = one_hot(np.where(allowed, q, -np.inf)[:N_PATIENT_STATES].argmax(1))
    vi[~seen] = mdp.expert_policy[:N_PATIENT_STATES][~seen]

    policies = {"imitation": imitation, "one-step": one_step, "value-iteration": vi}
    mortality = {name: mdp.exact_mortality(p) for name, p in policies.items()}
    mortality["clinicians"] = mdp.exact_mortality(mdp.expert_policy)
    mortality["optimal"] = 1.0 - float(mdp.initial @ value_iteration(mdp)[0])
    estimated = {name: _iterated_mortality(model, p, mdp.initial) for name, p in policies.items()}
    return CeilingResult(
        stays=int(cohort["stay_id"].nunique()),
        decisions=len(cohort),
        states_seen=int(seen.sum()),
        mortality=mortality,
        estimated=estimated,
    )


def _episodes(cohort: pd.DataFrame) -> Episodes:
    return Episodes.from_decisions(
        cohort["true_state"].to_numpy(), cohort["stay_id"].to_numpy(), cohort["step"].to_numpy(),
        cohort["action"].to_numpy(), cohort["died"].to_numpy(), n_states=N_PATIENT_STATES,
    )  # fmt: skip


def transition_counts(cohort: pd.DataFrame) -> np.ndarray:
    """``(716, 25, 716)`` counts of logged (state, action, next state); the last step of a stay
    goes to the death or the survival state by its outcome (the counts of
    :class:`safer.conformal.spi.TabularModel`, laid out as the ICU-Sepsis arrays)."""
    counts = TabularModel(_episodes(cohort)).counts.toarray()
    dense = counts.reshape(N_PATIENT_STATES, N_ACTIONS, N_PATIENT_STATES + 2)
    out = np.zeros((N_PATIENT_STATES + 3, N_ACTIONS, N_PATIENT_STATES + 3))
    out[:N_PATIENT_STATES, :, : N_PATIENT_STATES + 2] = dense
    return out


def _pad(per_state: np.ndarray) -> np.ndarray:
    """Rows for the 713 patient states -> rows for all 716 ICU-Sepsis states (terminal: 0)."""
    out = np.zeros((N_PATIENT_STATES + 3, *per_state.shape[1:]))
    out[:N_PATIENT_STATES] = per_state
    return out


def one_step_improvement(
    transitions: np.ndarray, behaviour: np.ndarray, allowed: np.ndarray
) -> np.ndarray:
    """Greedy policy on the behaviour policy's survival ``Q`` within ``allowed`` actions.

    ``transitions`` (716, 25, 716), ``behaviour`` and ``allowed`` (716, 25); returns a
    deterministic (713, 25) policy matrix. Survival is the probability of reaching the
    survival state; ``V`` of the behaviour policy is solved exactly on ``transitions``.

    Examples
    --------
    >>> mdp = load_mdp()
    >>> allowed = mdp.expert_policy >= 0.2 * mdp.expert_policy.max(1, keepdims=True)
    >>> policy = one_step_improvement(mdp.transitions, mdp.expert_policy, allowed)
    >>> round(mdp.exact_mortality(policy), 3)  # exact Q of the clinicians: below 15 %
    0.143
    """
    n = N_PATIENT_STATES
    chain = np.einsum("sa,sat->st", behaviour[:n], transitions[:n])
    # the chain's absorbing columns, reordered to the tabular layout (death n, survival n + 1)
    values = survival_values(np.concatenate([chain[:, :n], chain[:, [DEATH, SURVIVAL]]], 1)[None])
    full = np.zeros(transitions.shape[0])
    full[:n], full[SURVIVAL] = values[0, :n], 1.0
    q = transitions[:n] @ full  # (713, 25)
    return one_hot(greedy(q, allowed[:n]))


def _behaviour(tabular: TabularModel, mdp: IcuSepsisMDP) -> np.ndarray:
    """The estimated clinicians' policy; states never logged keep the true one."""
    behaviour = _pad(tabular.behaviour)
    unseen = _pad(tabular.n_s[:, None])[:, 0] == 0
    behaviour[unseen] = mdp.expert_policy[unseen]
    behaviour[N_PATIENT_STATES:] = 0.0
    return behaviour


def _estimated_transitions(tabular: TabularModel, mdp: IcuSepsisMDP) -> np.ndarray:
    """Empirical ``P_hat(s' | s, a)`` of the tabular model (unlogged actions of a seen state take
    the state's average over its logged actions) in the ICU-Sepsis layout; states never logged
    keep the true rows (they are never acted on)."""
    n = N_PATIENT_STATES
    dense = tabular.transitions.toarray().reshape(n, N_ACTIONS, n + 2)
    model = np.zeros((n + 3, N_ACTIONS, n + 3))
    model[:n, :, : n + 2] = dense
    unseen = np.r_[tabular.n_s == 0, np.ones(3, dtype=bool)]
    model[unseen] = mdp.transitions[unseen]
    return model


def _support(n_sa: np.ndarray, behaviour: np.ndarray, support: float) -> np.ndarray:
    allowed = (behaviour >= support * behaviour.max(axis=1, keepdims=True)) & (n_sa > 0)
    allowed[~allowed.any(axis=1)] = True  # unseen and terminal states: anything
    return allowed


def _iterated_mortality(
    transitions: np.ndarray, policy: np.ndarray, initial: np.ndarray, sweeps: int = 5000
) -> float:
    """Death probability under ``policy`` on an estimated model, by iterating ``m = b + Q m``.

    (An estimated model may trap a deterministic policy in a loop, where the linear solve of
    :meth:`IcuSepsisMDP.exact_mortality` is singular; the iteration converges to the death
    probability within the horizon regardless.)
    """
    n = N_PATIENT_STATES
    chain = np.einsum("sa,sat->st", policy[:n], transitions[:n])
    q, b = chain[:, :n], chain[:, DEATH]
    death = np.zeros(n)
    for _ in range(sweeps):
        new = b + q @ death
        if np.abs(new - death).max() < 1e-12:
            death = new
            break
        death = new
    return float(initial[:n] @ death)
