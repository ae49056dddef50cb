"""Tabular MDPs estimated by counting logged decisions over discrete states.

The one implementation of "count the logged transitions and solve the estimated MDP" in the
package: the safe gate (:mod:`safer.conformal.methods.spi`) uses it on decoded states, the oracle
ceiling (:mod:`safer.evaluation.ceiling`) on the simulator's true states.

Conventions. ``S`` patient states ``0..S-1`` and two absorbing outcomes: death ``S`` and
survival ``S+1`` (the last decision of a stay moves to one of them by the stay's outcome). The
value of a policy is its survival probability (reward 1 on reaching survival, no discount;
a tiny leak ``1 - 1e-7`` per step keeps the linear solve defined when an estimated model traps a
policy in a loop, where the true value is "never discharged", i.e. 0).

Examples
--------
>>> import numpy as np
>>> ep = Episodes.from_decisions(
...     states=[0, 1, 0, 1], stay=[7, 7, 8, 8], step=[0, 1, 0, 1], action=[2, 0, 3, 0],
...     died=[0, 0, 1, 1], n_states=2, n_actions=4)
>>> ep.next_state.tolist()  # 2 = death, 3 = survival
[1, 3, 1, 2]
>>> model = TabularModel(ep)
>>> model.behaviour.round(2).tolist()
[[0.0, 0.0, 0.5, 0.5], [1.0, 0.0, 0.0, 0.0]]
>>> round(model.value(model.behaviour), 3)  # clinicians' survival in the estimated model
0.5
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from safer.actions import N_ACTIONS
from safer.errors import SaferError

__all__ = [
    "LEAK",
    "Episodes",
    "TabularModel",
    "survival_values",
    "greedy",
    "one_hot",
]

#: Per-step continuation factor of every solve (see the module docstring).
LEAK = 1.0 - 1e-7


@dataclass(frozen=True)
class Episodes:
    """Logged decisions as transitions between discrete states, sorted by stay then step.

    Attributes
    ----------
    state, action, next_state : ndarray of int (n,)
        ``next_state`` is the next decision's state, or ``n_states`` (death) / ``n_states + 1``
        (survival) after the stay's last decision.
    episode : ndarray of int (n,)
        Index ``0..n_episodes-1`` of the decision's stay.
    first : ndarray of bool (n,)
        The stay's first decision.
    order : ndarray of int (n,)
        Position of each sorted decision in the arrays given to :meth:`from_decisions`.
    n_states, n_actions : int

    Examples
    --------
    >>> ep = Episodes.from_decisions(
    ...     states=[1, 0, 0], stay=[7, 7, 8], step=[1, 0, 0], action=[0, 2, 3], died=[0, 0, 1],
    ...     n_states=2, n_actions=4,
    ... )
    >>> ep.n_episodes, ep.state.tolist(), ep.next_state.tolist()  # 2 = death, 3 = survival
    (2, [0, 1, 0], [1, 3, 2])
    >>> ep.first.tolist(), ep.order.tolist()
    ([True, False, True], [1, 0, 2])
    """

    state: np.ndarray
    action: np.ndarray
    next_state: np.ndarray
    episode: np.ndarray
    first: np.ndarray
    order: np.ndarray
    n_states: int
    n_actions: int = N_ACTIONS

    @property
    def n_episodes(self) -> int:
        return int(self.episode[-1]) + 1 if len(self.episode) else 0

    @property
    def death(self) -> int:
        return self.n_states

    @property
    def survival(self) -> int:
        return self.n_states + 1

    @classmethod
    def from_decisions(
        cls, states, stay, step, action, died, n_states: int, n_actions: int = N_ACTIONS
    ) -> Episodes:
        """Transitions from per-decision arrays in any order (one entry per logged decision).

        ``died`` is the stay's outcome (0/1) repeated on its rows; the decisions of a stay are
        its consecutive steps (a gap in ``step`` links the rows on either side of it).
        """
        states = np.asarray(states, dtype=np.int64)
        action = np.asarray(action, dtype=np.int64)
        stay = np.asarray(stay)
        step = np.asarray(step, dtype=float)
        died = np.asarray(died)
        n = len(states)
        if not (len(action) == len(stay) == len(step) == len(died) == n):
            raise SaferError("states, stay, step, action and died must have one entry per decision")
        if n == 0:
            raise SaferError("no logged decisions to estimate a model from")
        if states.min() < 0 or states.max() >= n_states:
            raise SaferError(f"states must lie in 0..{n_states - 1}")
        if action.min() < 0 or action.max() >= n_actions:
            raise SaferError(f"actions must lie in 0..{n_actions - 1}")
        order = np.lexsort((step, stay))
        s, a, st = states[order], action[order], stay[order]
        first = np.ones(n, dtype=bool)
        first[1:] = st[1:] != st[:-1]
        last = np.ones(n, dtype=bool)
        last[:-1] = first[1:]
        nxt = np.empty_like(s)
        nxt[:-1] = s[1:]
        outcome = np.asarray(died[order], dtype=float)
        if np.any((outcome != 0) & (outcome != 1)):
            raise SaferError("died must be 0 or 1 on every row")
        nxt[last] = np.where(outcome[last] == 1, n_states, n_states + 1)
        episode = np.cumsum(first) - 1
        return cls(s, a, nxt, episode, first, order, int(n_states), int(n_actions))

    def subset(self, keep_episodes: np.ndarray) -> Episodes:
        """The decisions of the episodes ``keep_episodes`` (indices), renumbered."""
        mask = np.isin(self.episode, keep_episodes)
        _, episode = np.unique(self.episode[mask], return_inverse=True)
        return Episodes(
            self.state[mask], self.action[mask], self.next_state[mask], episode,
            self.first[mask], self.order[mask], self.n_states, self.n_actions,
        )  # fmt: skip


class TabularModel:
    """Counts and maximum-likelihood estimates of a tabular MDP from :class:`Episodes`.

    Parameters
    ----------
    episodes : Episodes
    weights : ndarray (n_episodes,), optional
        A weight per stay (bootstrap resampling counts); default 1.
    prior : float
        Pseudo-counts of a Dirichlet prior centred on the state's average transition: a pair
        logged ``n`` times gets ``(counts + prior * P_hat(. | s)) / (n + prior)``, which shrinks
        rarely logged doses toward what follows the state on average (0 = maximum likelihood).

    Attributes
    ----------
    n_sa : ndarray (S, A)
        (Weighted) count of each logged state-action pair.
    n_s : ndarray (S,)
    behaviour : ndarray (S, A)
        The clinicians' estimated policy ``n_sa / n_s``; uniform in states never logged.
    initial : ndarray (S,)
        Distribution of the stays' first states.
    transitions : scipy.sparse.csr_matrix (S * A, S + 2)
        ``P_hat(s' | s, a)`` in row ``s * A + a``. An action never logged in a logged state
        takes the state's average over its logged actions; a state never logged stays in place
        (it is never reached from the logged states).

    Examples
    --------
    Four one-step stays in one state: dose 0 twice (both died), dose 1 twice (one died).

    >>> ep = Episodes.from_decisions(
    ...     [0, 0, 0, 0], stay=[1, 2, 3, 4], step=[0] * 4, action=[0, 0, 1, 1], died=[1, 1, 0, 1],
    ...     n_states=1, n_actions=2,
    ... )
    >>> model = TabularModel(ep)
    >>> model.n_sa.tolist(), model.behaviour.tolist()
    ([[2.0, 2.0]], [[0.5, 0.5]])
    >>> round(model.value(model.behaviour), 3), round(model.value(np.array([[0.0, 1.0]])), 3)
    (0.25, 0.5)
    """

    def __init__(self, episodes: Episodes, weights: np.ndarray | None = None, prior: float = 0.0):
        if prior < 0:
            raise SaferError(f"prior must be >= 0, got {prior}")
        self.prior = float(prior)
        ep = episodes
        S, A = ep.n_states, ep.n_actions
        w = np.ones(len(ep.state)) if weights is None else np.asarray(weights, float)[ep.episode]
        self.n_states, self.n_actions = S, A
        row = ep.state * A + ep.action
        counts = sparse.csr_matrix((w, (row, ep.next_state)), shape=(S * A, S + 2))
        counts.sum_duplicates()
        self.counts = counts
        self.n_sa = np.asarray(counts.sum(axis=1)).reshape(S, A)
        self.n_s = self.n_sa.sum(axis=1)
        seen = self.n_s > 0
        self.behaviour = np.full((S, A), 1.0 / A)
        self.behaviour[seen] = self.n_sa[seen] / self.n_s[seen, None]
        first = np.bincount(ep.state[ep.first], weights=w[ep.first], minlength=S)
        self.initial = first / max(first.sum(), 1e-300)
        self.transitions = self._normalise(counts)

    # -- estimates ---------------------------------------------------------------------------

    def _normalise(self, counts: sparse.csr_matrix) -> sparse.csr_matrix:
        S, A = self.n_states, self.n_actions
        by_state = sparse.csr_matrix(
            (np.ones(S * A), (np.repeat(np.arange(S), A), np.arange(S * A))), shape=(S, S * A)
        )
        state_counts = by_state @ counts  # (S, S+2)
        inv_s = np.where(self.n_s > 0, 1.0 / np.maximum(self.n_s, 1e-300), 0.0)
        state_avg = sparse.diags(inv_s) @ state_counts
        stay = sparse.csr_matrix(
            (np.ones(int((self.n_s == 0).sum())), (np.flatnonzero(self.n_s == 0),) * 2),
            shape=(S, S + 2),
        )
        fallback = (state_avg + stay).tocsr()
        n_sa = self.n_sa.ravel()
        logged = n_sa > 0
        denom = n_sa + self.prior
        inv = np.where(logged, 1.0 / np.maximum(denom, 1e-300), 0.0)
        estimate = sparse.diags(inv) @ counts
        weight = np.where(logged, self.prior * inv, 1.0)  # the fallback's share of each row
        shrunk = sparse.diags(weight) @ fallback[np.repeat(np.arange(S), A)]
        return (estimate + shrunk).tocsr()

    def chain(self, policy: np.ndarray) -> np.ndarray:
        """Dense ``(S, S + 2)`` state-to-state transition matrix under ``policy`` (S, A)."""
        S, A = self.n_states, self.n_actions
        pi = np.asarray(policy, dtype=float)
        if pi.shape != (S, A):
            raise SaferError(f"a policy over this model is a ({S}, {A}) matrix; got {pi.shape}")
        weights = sparse.csr_matrix(
            (pi.ravel(), (np.repeat(np.arange(S), A), np.arange(S * A))), shape=(S, S * A)
        )
        return (weights @ self.transitions).toarray()

    def evaluate(self, policy: np.ndarray) -> np.ndarray:
        """Survival probability ``V`` (S + 2,) of every state under ``policy`` (V = 0 at death,
        1 at survival)."""
        return survival_values(self.chain(policy)[None])[0]

    def q_values(self, values: np.ndarray) -> np.ndarray:
        """``Q(s, a) = sum_s' P_hat(s' | s, a) V(s')``, shape (S, A)."""
        return (self.transitions @ values).reshape(self.n_states, self.n_actions)

    def value(self, policy: np.ndarray) -> float:
        """Survival from the estimated initial distribution under ``policy``."""
        return float(self.initial @ self.evaluate(policy)[: self.n_states])


def survival_values(chains: np.ndarray) -> np.ndarray:
    """Survival values of a batch of ``(B, S, S + 2)`` chains, shape ``(B, S + 2)``.

    Solves ``(I - LEAK * Q) v = LEAK * b`` per chain (``Q`` among patient states, ``b`` the
    one-step survival probability) with one batched LAPACK call.

    Examples
    --------
    >>> chain = np.array([[[0.5, 0.2, 0.3]]])  # stay (0.5), die (0.2) or survive (0.3)
    >>> survival_values(chain).round(4).tolist()
    [[0.6, 0.0, 1.0]]
    """
    chains = np.asarray(chains, dtype=float)
    B, S = chains.shape[0], chains.shape[1]
    system = np.eye(S)[None] - LEAK * chains[:, :, :S]
    v = np.linalg.solve(system, LEAK * chains[:, :, S + 1 : S + 2])[..., 0]
    out = np.zeros((B, S + 2))
    out[:, :S] = np.clip(v, 0.0, 1.0)
    out[:, S + 1] = 1.0
    return out


def greedy(q: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The highest-``q`` allowed action of every state (S,); ties go to the lower index."""
    return np.where(allowed, q, -np.inf).argmax(axis=1)


def one_hot(actions: np.ndarray, n_actions: int = N_ACTIONS) -> np.ndarray:
    """Deterministic policy matrix (S, A) of one action per state."""
    return np.eye(n_actions)[np.asarray(actions, dtype=np.int64)]
