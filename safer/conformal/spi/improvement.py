"""Safe policy improvement over an estimated baseline on a tabular MDP (numpy, from the papers).

Every algorithm takes a :class:`~safer.conformal.spi.tabular.TabularModel` estimated from the
training stays (the clinicians' policy ``pi_b`` is its count estimate ``model.behaviour``) and
returns a :class:`Proposal`: the algorithm's policy and its Q-values in the estimated model.
"Bootstrapped" pairs are the state-actions logged fewer than ``n_wedge`` times: the algorithms
never trust their estimate there.

``one-step``
    One step of policy improvement on the clinicians' estimated Q within the supported actions
    (``n_sa >= n_wedge``): the greedy action of ``Q^{pi_b}``. Trusts the estimated model for one
    step, then the clinicians' continuation.
``pib-spibb``
    Pi_b-SPIBB (Laroche, Trichelair & Tachet des Combes, "Safe Policy Improvement with Baseline
    Bootstrapping", ICML 2019, Algorithm 1): policy iteration whose improvement step keeps
    ``pi_b`` on bootstrapped pairs and gives the rest of the state's mass to the best
    non-bootstrapped action. With ``pi_b`` estimated by counts, as analysed by Simao, Laroche &
    Tachet des Combes ("Safe Policy Improvement with an Estimated Baseline Policy", AAMAS 2020).
``pileb-spibb``
    Pi_<=b-SPIBB (Laroche et al. 2019, Algorithm 2): bootstrapped pairs may only *lose*
    probability (``pi(a|s) <= pi_b(a|s)``); actions are filled in decreasing Q order.
``adv-soft-spibb``
    Adv-Approx-Soft-SPIBB (Scholl, Dietrich, Otte & Udluft, "Safe Policy Improvement Approaches
    on Discrete Markov Decision Processes", ICAART 2022): the approximate Soft-SPIBB step of
    Nadjahi, Laroche & Tachet des Combes (ECML-PKDD 2019) -- mass moves from low- to high-Q
    actions while ``sum_a e(s,a) |pi(a|s) - pi_b(a|s)| <= epsilon``, ``e(s,a) =
    sqrt(2 log(2 |S| |A| / delta_e) / n_sa)`` -- with Scholl et al.'s correction that each move
    keeps the policy's advantage over ``pi_b`` non-negative (``sum_a (pi - pi_b) Q^{pi_b} >= 0``,
    here with the model-based ``Q^{pi_b}``), which their corrected safety bound needs.
``lcb``
    One step of *pessimistic* improvement: the greedy action of the lower confidence bound
    ``Q^{pi_b}(s, a) - kappa * se(s, a)`` among the supported actions, taken only where that
    bound beats the clinicians' mix ``V^{pi_b}(s)``; ``se`` is the standard error of the
    one-step estimate, ``sqrt(Var_{s' ~ P_hat(.|s,a)} V^{pi_b}(s') / (n_sa + prior))``. It is
    the one-step case of pessimistic value iteration (Jin, Yang & Wang, "Is Pessimism Provably
    Efficient for Offline RL?", ICML 2021): a dose seen rarely, or with a spread-out outcome,
    must show a larger estimated advantage before it is proposed, which curbs the winner's
    curse of greedy selection among many noisy estimates.
``support-vi``
    Support-constrained value iteration (batch-constrained tabular offline RL; Fujimoto, Meger &
    Precup, "Off-Policy Deep Reinforcement Learning without Exploration", ICML 2019, in its
    tabular form): the optimal policy of the estimated model among supported actions, solved
    by policy iteration.

Examples
--------
>>> import numpy as np
>>> from safer.conformal.spi.tabular import Episodes, TabularModel
>>> ep = Episodes.from_decisions([0, 0, 0, 0], stay=[1, 2, 3, 4], step=[0] * 4,
...                              action=[0, 0, 1, 1], died=[1, 1, 0, 1], n_states=1, n_actions=2)
>>> model = TabularModel(ep)
>>> ALGORITHMS["one-step"](model, n_wedge=1).policy.tolist()  # action 1 survives more
[[0.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from safer._registry import Registry
from safer.conformal.spi.tabular import TabularModel, greedy, one_hot
from safer.errors import SaferError

__all__ = [
    "ALGORITHMS",
    "Proposal",
    "one_step",
    "pi_b_spibb",
    "pi_leq_b_spibb",
    "adv_approx_soft_spibb",
    "support_value_iteration",
    "lcb_step",
    "lower_confidence",
    "supported",
]

_MAX_ITER = 200


@dataclass(frozen=True)
class Proposal:
    """An improvement algorithm's output on the estimated model.

    Attributes
    ----------
    policy : ndarray (S, A)
        The algorithm's policy (stochastic for the SPIBB family).
    q : ndarray (S, A)
        Its Q-values (survival probability) in the estimated model.
    values : ndarray (S + 2,)
        Its state values.
    iterations : int
        Policy-iteration steps taken (1 for one-step).

    Examples
    --------
    >>> from safer.conformal.spi.tabular import Episodes, TabularModel
    >>> ep = Episodes.from_decisions(
    ...     [0, 0, 0, 0], stay=[1, 2, 3, 4], step=[0] * 4, action=[0, 0, 1, 1], died=[1, 1, 0, 1],
    ...     n_states=1, n_actions=2,
    ... )
    >>> proposal = ALGORITHMS["one-step"](TabularModel(ep), n_wedge=1)
    >>> proposal.policy.tolist(), proposal.q.round(2).tolist(), proposal.iterations
    ([[0.0, 1.0]], [[0.0, 0.5]], 1)
    """

    policy: np.ndarray
    q: np.ndarray
    values: np.ndarray
    iterations: int


def supported(model: TabularModel, n_wedge: int) -> np.ndarray:
    """(S, A) bool: the pairs logged at least ``n_wedge`` times (not bootstrapped)."""
    if n_wedge < 1:
        raise SaferError(
            f"n_wedge (the minimum count of a trusted action) must be >= 1, got {n_wedge}"
        )
    return model.n_sa >= n_wedge


def _finish(model: TabularModel, policy: np.ndarray, iterations: int) -> Proposal:
    values = model.evaluate(policy)
    return Proposal(policy, model.q_values(values), values, iterations)


def one_step(model: TabularModel, n_wedge: int = 10) -> Proposal:
    """Greedy on the clinicians' estimated ``Q^{pi_b}`` among supported actions; states with no
    supported action keep ``pi_b``."""
    allowed = supported(model, n_wedge)
    q_b = model.q_values(model.evaluate(model.behaviour))
    policy = model.behaviour.copy()
    rows = allowed.any(axis=1)
    policy[rows] = one_hot(greedy(q_b, allowed)[rows], model.n_actions)
    return _finish(model, policy, 1)


def lower_confidence(model: TabularModel, values: np.ndarray, kappa: float) -> np.ndarray:
    """``Q(s, a) - kappa * se(s, a)`` (S, A) for state values ``values`` (S + 2,): the one-step
    estimate minus ``kappa`` standard errors, ``se = sqrt(Var_{P_hat(.|s,a)} V / (n_sa +
    prior))`` (pairs never logged get no bound: ``-inf``)."""
    if kappa < 0:
        raise SaferError(f"kappa (standard errors of pessimism) must be >= 0, got {kappa}")
    q = model.q_values(values)
    second = (model.transitions @ values**2).reshape(q.shape)
    logged = model.n_sa > 0
    se = np.sqrt(np.maximum(second - q**2, 0.0) / np.where(logged, model.n_sa + model.prior, 1.0))
    return np.where(logged, q - kappa * se, -np.inf)


def lcb_step(model: TabularModel, n_wedge: int = 10, kappa: float = 1.0) -> Proposal:
    """Pessimistic one step (see the module docstring): in each state the supported dose of
    the highest lower bound, where that bound exceeds the clinicians' ``V^{pi_b}(s)``; other
    states keep ``pi_b``. ``kappa = 0`` is :func:`one_step` restricted to doses that beat the
    clinicians' mix."""
    allowed = supported(model, n_wedge)
    v_b = model.evaluate(model.behaviour)
    lower = np.where(allowed, lower_confidence(model, v_b, kappa), -np.inf)
    best = lower.argmax(axis=1)
    rows = np.arange(model.n_states)
    move = allowed.any(axis=1) & (lower[rows, best] > v_b[: model.n_states])
    policy = model.behaviour.copy()
    policy[move] = one_hot(best[move], model.n_actions)
    return _finish(model, policy, 1)


def _policy_iteration(
    model: TabularModel, project: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> Proposal:
    """``pi <- project(Q^pi, pi)`` from ``pi_b`` until the policy stops changing."""
    policy = model.behaviour.copy()
    for it in range(1, _MAX_ITER + 1):
        q = model.q_values(model.evaluate(policy))
        new = project(q, policy)
        if np.allclose(new, policy, atol=1e-12):
            return _finish(model, new, it)
        policy = new
    return _finish(model, policy, _MAX_ITER)


def pi_b_spibb(model: TabularModel, n_wedge: int = 10) -> Proposal:
    """Pi_b-SPIBB: ``pi = pi_b`` on bootstrapped pairs, the rest of the mass on the best
    supported action (Laroche et al. 2019, Algorithm 1)."""
    allowed = supported(model, n_wedge)
    pi_b = model.behaviour
    kept = np.where(allowed, 0.0, pi_b)
    free = np.where(allowed, pi_b, 0.0).sum(axis=1)
    rows = allowed.any(axis=1)

    def project(q, _policy):
        new = kept.copy()
        best = greedy(q, allowed)
        new[rows, best[rows]] += free[rows]
        new[~rows] = pi_b[~rows]
        return new

    return _policy_iteration(model, project)


def pi_leq_b_spibb(model: TabularModel, n_wedge: int = 10) -> Proposal:
    """Pi_<=b-SPIBB: bootstrapped pairs get at most ``pi_b``; actions filled in decreasing Q
    (Laroche et al. 2019, Algorithm 2)."""
    allowed = supported(model, n_wedge)
    pi_b = model.behaviour
    S, A = pi_b.shape

    def project(q, _policy):
        new = np.zeros((S, A))
        order = np.argsort(-q, axis=1, kind="stable")
        for s in range(S):
            left = 1.0
            for a in order[s]:
                if allowed[s, a]:
                    new[s, a] = left
                    left = 0.0
                    break
                take = min(pi_b[s, a], left)
                new[s, a] = take
                left -= take
            if left > 1e-12:  # every action bootstrapped: pi_b's own mass
                new[s] = pi_b[s]
        return new

    return _policy_iteration(model, project)


def adv_approx_soft_spibb(
    model: TabularModel, epsilon: float = 0.5, delta_error: float = 0.05
) -> Proposal:
    """Adv-Approx-Soft-SPIBB (Scholl et al. 2022 on Nadjahi et al. 2019).

    Parameters
    ----------
    epsilon : float
        Error budget per state: ``sum_a e(s, a) |pi(a|s) - pi_b(a|s)| <= epsilon``.
    delta_error : float
        Confidence of the Hoeffding error ``e(s, a)`` (infinite for unlogged pairs).
    """
    if epsilon <= 0:
        raise SaferError(f"epsilon must be > 0, got {epsilon}")
    S, A = model.n_sa.shape
    n = model.n_sa
    with np.errstate(divide="ignore"):
        error = np.where(
            n > 0, np.sqrt(2.0 * np.log(2.0 * S * A / delta_error) / np.maximum(n, 1e-300)), np.inf
        )
    pi_b = model.behaviour
    q_b = model.q_values(model.evaluate(pi_b))
    previous: list[np.ndarray | None] = [None]

    def project(q, _policy):
        new = pi_b.copy()
        for s in range(S):
            budget, adv_budget = epsilon, 0.0
            e, qs, qb = error[s], q[s], q_b[s]
            for bot in np.argsort(qs, kind="stable"):  # lowest Q first
                mass_bot = min(new[s, bot], budget / (2.0 * e[bot]))
                with np.errstate(divide="ignore", invalid="ignore"):
                    rank = -(qs - qs[bot]) / e
                for top in np.argsort(rank, kind="stable"):
                    if top == bot:
                        break
                    gain_b = qb[top] - qb[bot]
                    mass = min(mass_bot, budget / (2.0 * e[top]))
                    if gain_b < 0:
                        mass = min(mass, adv_budget / -gain_b)
                    if mass > 0:
                        adv_budget += gain_b * mass
                        mass_bot -= mass
                        new[s, bot] -= mass
                        new[s, top] += mass
                        budget -= mass * (e[bot] + e[top])
                    if mass_bot <= 0:
                        break
            old = previous[0]
            if old is not None and new[s] @ qs < old[s] @ qs:  # keep the local improvement
                new[s] = old[s]
        previous[0] = new.copy()
        return new

    return _policy_iteration(model, project)


def support_value_iteration(model: TabularModel, n_wedge: int = 10) -> Proposal:
    """The best policy of the estimated model among supported actions (policy iteration);
    states with no supported action keep ``pi_b``."""
    allowed = supported(model, n_wedge)
    rows = allowed.any(axis=1)
    pi_b = model.behaviour

    def project(q, _policy):
        new = pi_b.copy()
        new[rows] = one_hot(greedy(q, allowed)[rows], model.n_actions)
        return new

    return _policy_iteration(model, project)


#: Improvement algorithm name -> function(model, **settings) -> Proposal.
ALGORITHMS: Registry[Callable[..., Proposal]] = Registry(
    "improvement algorithm",
    {
        "one-step": one_step,
        "pib-spibb": pi_b_spibb,
        "pileb-spibb": pi_leq_b_spibb,
        "adv-soft-spibb": adv_approx_soft_spibb,
        "support-vi": support_value_iteration,
        "lcb": lcb_step,
    },
)
