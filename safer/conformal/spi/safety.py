"""The split-sample safety test: is a fixed candidate better than the clinicians on held-out stays?

High-confidence policy improvement in the style of Thomas, Theocharous & Ghavamzadeh ("High
Confidence Policy Improvement", ICML 2015): the candidate is built from the training stays only;
a test on stays it never saw decides whether to deploy it. The candidate is a *gate policy*:
in each decoded state it either gives one dose (``action[s]``, on a fraction ``act[s]`` of the
decisions there, the rest returning to the clinicians) or defers to the clinicians.

:func:`paired_bootstrap` (the default test)
    Resample the held-out stays with replacement; in each resample estimate the tabular model,
    score the candidate and the resample's clinicians in that same model (they differ only
    where the candidate deviates) and take the survival gain. The lower bound is the
    ``delta``-quantile of the gains (percentile bootstrap). Approximate: its error rate is
    checked empirically (``tests/conformal/test_spi_safety_slow.py``).
:func:`is_lower_bound`
    An importance-sampling bound on the same gain that holds with probability ``1 - delta``
    for any data size given the clinicians' action probabilities (here estimated from the
    training stays): per stay ``rho R - R``, ``rho`` the ratio of the candidate's and the
    clinicians' probabilities of the logged actions and ``R`` survival, bounded with the
    truncated empirical-Bernstein inequality of Thomas et al. (AAAI 2015, Theorem 1), the
    truncation chosen on a third of the stays. With a deterministic dose the ratios are large
    and the bound is loose: it is reported even when it certifies nothing.
:func:`per_state_bootstrap`
    The per-state variant: a bootstrap lower bound on the one-step advantage
    ``Q^{pi_b}(s, action[s]) - V^{pi_b}(s)`` of each state, Bonferroni-corrected across the
    tested states, so that the set of states where the candidate acts is valid jointly.

Examples
--------
>>> import numpy as np
>>> from safer.conformal.spi.tabular import Episodes
>>> rng = np.random.default_rng(0)
>>> n = 400; a = rng.integers(0, 2, n)
>>> died = (rng.random(n) < np.where(a == 1, 0.1, 0.4)).astype(int)
>>> ep = Episodes.from_decisions(np.zeros(n, int), np.arange(n), np.zeros(n), a, died, 1, 2)
>>> test = paired_bootstrap(ep, action=np.array([1]), act=np.array([1.0]), delta=0.05, seed=0)
>>> bool(test.lower > 0.1), round(test.estimate, 2)  # giving action 1 to all: +~15 points
(True, 0.14)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from safer.conformal.spi.tabular import LEAK, Episodes
from safer.errors import SaferError

__all__ = [
    "BootstrapResult",
    "paired_bootstrap",
    "per_state_bootstrap",
    "is_lower_bound",
    "compact",
]

_CHUNK_BYTES = 100e6  # bootstrap weights and cell probabilities built per batch


def _chunk(n_episodes: int, n_cells: int) -> int:
    return max(1, int(_CHUNK_BYTES // (8 * (n_episodes + 6 * n_cells))))


@dataclass(frozen=True)
class BootstrapResult:
    """A paired bootstrap of the candidate's survival gain over the clinicians.

    Attributes
    ----------
    estimate : float
        Gain (survival probability, candidate minus clinicians) in the model of all held-out
        stays.
    lower, upper : float
        ``delta``- and ``(1 - delta)``-quantiles of the resampled gains.
    gains : ndarray (n_boot,)
    delta : float
    n_stays : int

    Examples
    --------
    >>> from safer.conformal.spi.tabular import Episodes
    >>> rng = np.random.default_rng(0)
    >>> n = 200; a = rng.integers(0, 2, n)
    >>> died = (rng.random(n) < np.where(a == 1, 0.1, 0.4)).astype(int)
    >>> ep = Episodes.from_decisions(np.zeros(n, int), np.arange(n), np.zeros(n), a, died, 1, 2)
    >>> res = paired_bootstrap(ep, np.array([1]), np.array([1.0]), n_boot=100, seed=0)
    >>> res.gains.shape, res.n_stays, bool(res.lower <= res.estimate <= res.upper)
    ((100,), 200, True)
    """

    estimate: float
    lower: float
    upper: float
    gains: np.ndarray
    delta: float
    n_stays: int


def compact(episodes: Episodes, *per_state: np.ndarray) -> tuple[Episodes, list[np.ndarray]]:
    """Renumber the states of ``episodes`` to those it visits (a smaller model), and index the
    per-state arrays ``per_state`` (over the original states) accordingly."""
    visited = np.unique(episodes.state)
    k = len(visited)
    lookup = np.full(episodes.n_states + 2, -1)
    lookup[visited] = np.arange(k)
    lookup[episodes.n_states] = k
    lookup[episodes.n_states + 1] = k + 1
    small = Episodes(
        lookup[episodes.state], episodes.action, lookup[episodes.next_state], episodes.episode,
        episodes.first, episodes.order, k, episodes.n_actions,
    )  # fmt: skip
    return small, [np.asarray(a)[visited] for a in per_state]


def _check(episodes: Episodes, action: np.ndarray, act: np.ndarray, delta: float) -> None:
    S = episodes.n_states
    if action.shape != (S,) or act.shape != (S,):
        raise SaferError(f"action and act need one entry per state ({S})")
    if np.any((act < 0) | (act > 1)):
        raise SaferError("act (the fraction of decisions where the candidate acts) lies in [0, 1]")
    if not 0.0 < delta < 0.5:
        raise SaferError(f"delta must lie in (0, 0.5), got {delta}")


class _Resampler:
    """The clinicians' and the candidate's chains in weighted models of the same episodes.

    Every resample shares the sparsity of the held-out transitions (the cells ``(s, s')`` that
    were logged), so a chain is a vector of cell probabilities and each survival solve is a
    sparse BiCGSTAB started from the full-sample solution (a direct sparse solve when it does
    not converge).
    """

    def __init__(self, episodes: Episodes, action: np.ndarray, act: np.ndarray):
        ep = episodes
        S = ep.n_states
        self.ep, self.S, self.act = ep, S, np.asarray(act, dtype=float)
        key = ep.state * (S + 2) + ep.next_state
        cells, self.cell_of = np.unique(key, return_inverse=True)
        self.row, self.col = cells // (S + 2), cells % (S + 2)
        self.follow = (self.act[ep.state] > 0) & (ep.action == np.asarray(action)[ep.state])
        inner = self.col < S
        # I - LEAK * Q on patient columns: a CSR template over the diagonal and the inner cells
        rows = np.r_[np.arange(S), self.row[inner]]
        cols = np.r_[np.arange(S), self.col[inner]]
        order = np.lexsort((cols, rows))
        self.template = sparse.csr_matrix(
            (np.ones(len(rows)), (rows[order], cols[order])), shape=(S, S)
        )
        self.template.sum_duplicates()
        t_rows = np.repeat(np.arange(S), np.diff(self.template.indptr))
        t_keys = t_rows * S + self.template.indices  # sorted: CSR order is by row, then column
        self.diag_at = np.searchsorted(t_keys, np.arange(S) * (S + 1))
        self.inner_cells = np.flatnonzero(inner)
        self.inner_at = np.searchsorted(t_keys, self.row[inner] * S + self.col[inner])
        self.survive_cells = np.flatnonzero(self.col == S + 1)

    def probabilities(self, weights: np.ndarray):
        """Cell probabilities of the clinicians and of the candidate and the initial
        distribution, for stay weights (B, n_episodes): (B, n_cells) x2 and (B, S)."""
        B, S, n_cells = len(weights), self.S, len(self.row)
        w = weights[:, self.ep.episode]
        offset = (np.arange(B) * n_cells)[:, None]
        cell = np.bincount((offset + self.cell_of).ravel(), weights=w.ravel(),
                           minlength=B * n_cells).reshape(B, n_cells).astype(float)  # fmt: skip
        dose = np.bincount((offset + self.cell_of[self.follow]).ravel(),
                           weights=w[:, self.follow].ravel(),
                           minlength=B * n_cells).reshape(B, n_cells).astype(float)  # fmt: skip
        n_s = _by_row(cell, self.row, S)
        n_d = _by_row(dose, self.row, S)
        p_b = np.divide(cell, n_s[:, self.row], out=np.zeros_like(cell), where=n_s[:, self.row] > 0)
        has = n_d[:, self.row] > 0
        p_dose = np.where(has, np.divide(dose, n_d[:, self.row], out=np.zeros_like(dose),
                                         where=has), p_b)  # fmt: skip
        f = self.act[self.row][None, :]
        p_c = f * p_dose + (1.0 - f) * p_b
        first = self.ep.first
        d0 = np.bincount(((np.arange(B) * S)[:, None] + self.ep.state[first][None]).ravel(),
                         weights=w[:, first].ravel(), minlength=B * S).reshape(B, S)  # fmt: skip
        d0 /= d0.sum(axis=1, keepdims=True)
        return p_b, p_dose, p_c, d0, has

    def solve(self, p: np.ndarray, x0: np.ndarray | None = None) -> np.ndarray:
        """Survival values (S + 2,) of the chain with cell probabilities ``p`` (n_cells,)."""
        from scipy.sparse.linalg import bicgstab, spsolve

        S = self.S
        m = self.template.copy()
        m.data[:] = 0.0
        m.data[self.diag_at] = 1.0
        np.add.at(m.data, self.inner_at, -LEAK * p[self.inner_cells])
        b = np.bincount(self.row[self.survive_cells], weights=LEAK * p[self.survive_cells],
                        minlength=S)  # fmt: skip
        v, info = bicgstab(m, b, x0=x0, rtol=1e-11, atol=0.0, maxiter=200)
        if info != 0 or not np.all(np.isfinite(v)):
            v = spsolve(m.tocsc(), b)
        out = np.zeros(S + 2)
        out[:S] = np.clip(v, 0.0, 1.0)
        out[S + 1] = 1.0
        return out

    def values(self, p: np.ndarray, start: np.ndarray | None) -> np.ndarray:
        """Survival values (B, S + 2) of a batch of chains (B, n_cells)."""
        return np.stack([self.solve(pi, None if start is None else start[: self.S]) for pi in p])

    def gains(self, weights: np.ndarray, start=None) -> np.ndarray:
        p_b, _, p_c, d0, _ = self.probabilities(weights)
        s_b, s_c = (None, None) if start is None else start
        v_b = self.values(p_b, s_b)[:, : self.S]
        v_c = self.values(p_c, s_c)[:, : self.S]
        return np.einsum("bs,bs->b", d0, v_c - v_b)


def _by_row(values: np.ndarray, row: np.ndarray, S: int) -> np.ndarray:
    """Sum (B, n_cells) over the cells of each row: (B, S)."""
    B = len(values)
    idx = ((np.arange(B) * S)[:, None] + row[None]).ravel()
    return np.bincount(idx, weights=values.ravel(), minlength=B * S).reshape(B, S)


def _weights(n_episodes: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Multinomial bootstrap counts: (n_boot, n_episodes)."""
    picks = rng.integers(0, n_episodes, size=(n_boot, n_episodes))
    out = np.zeros((n_boot, n_episodes))
    np.add.at(out, (np.arange(n_boot)[:, None], picks), 1.0)
    return out


def _full_sample(sampler: _Resampler, n_episodes: int):
    """Point estimate and the full-sample values used as the solver's starting points."""
    p_b, _, p_c, d0, _ = sampler.probabilities(np.ones((1, n_episodes)))
    v_b, v_c = sampler.solve(p_b[0]), sampler.solve(p_c[0])
    gain = float(d0[0] @ (v_c[: sampler.S] - v_b[: sampler.S]))
    return gain, v_b, v_c


def paired_bootstrap(
    episodes: Episodes,
    action: np.ndarray,
    act: np.ndarray,
    *,
    delta: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
) -> BootstrapResult:
    """Percentile-bootstrap lower bound on the candidate's survival gain over the clinicians.

    Parameters
    ----------
    episodes : Episodes
        The held-out stays' decisions over decoded states.
    action : ndarray of int (n_states,)
        The candidate's dose in each state (ignored where ``act`` is 0).
    act : ndarray of float (n_states,)
        Fraction of the decisions in each state where the candidate gives its dose; the rest
        (and every decision of a state with ``act`` 0) follow the clinicians.
    delta : float
        One-sided level: the bound is the ``delta``-quantile of the resampled gains.
    n_boot : int
        Resamples.
    seed : int
    """
    action = np.asarray(action, dtype=np.int64)
    act = np.asarray(act, dtype=float)
    _check(episodes, action, act, delta)
    small, (action, act) = compact(episodes, action, act)
    sampler = _Resampler(small, action, act)
    n_eps = small.n_episodes
    estimate, v_b, v_c = _full_sample(sampler, n_eps)
    rng = np.random.default_rng(seed)
    chunk = _chunk(n_eps, len(sampler.row))
    gains = np.concatenate(
        [
            sampler.gains(_weights(n_eps, min(chunk, n_boot - start), rng), (v_b, v_c))
            for start in range(0, n_boot, chunk)
        ]
    )
    return BootstrapResult(
        estimate=estimate,
        lower=float(np.quantile(gains, delta)),
        upper=float(np.quantile(gains, 1.0 - delta)),
        gains=gains,
        delta=delta,
        n_stays=n_eps,
    )


def per_state_bootstrap(
    episodes: Episodes,
    action: np.ndarray,
    act: np.ndarray,
    *,
    delta: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """Per-state lower bounds (n_states,) on ``Q^{pi_b}(s, action[s]) - V^{pi_b}(s)``.

    Each tested state (``act > 0``) gets the ``delta / n_tested``-quantile of its resampled
    one-step advantage (Bonferroni across states); untested states and states where the dose
    was never logged in a resample get ``-inf`` (not certified).
    """
    action = np.asarray(action, dtype=np.int64)
    act = np.asarray(act, dtype=float)
    _check(episodes, action, act, delta)
    full_states = episodes.n_states
    small, (action_s, act_s) = compact(episodes, action, act)
    visited = np.unique(episodes.state)
    tested = act_s > 0
    out = np.full(full_states, -np.inf)
    if not tested.any():
        return out
    sampler = _Resampler(small, action_s, (act_s > 0).astype(float))
    rng = np.random.default_rng(seed)
    level = delta / int(tested.sum())
    S = small.n_states
    n_eps = small.n_episodes
    _, v_full, _ = _full_sample(sampler, n_eps)
    chunk = _chunk(n_eps, len(sampler.row))
    advantages = []
    for start in range(0, n_boot, chunk):
        weights = _weights(n_eps, min(chunk, n_boot - start), rng)
        p_b, p_dose, _, _, has = sampler.probabilities(weights)
        v_b = sampler.values(p_b, v_full)
        q = _by_row(p_dose * v_b[:, sampler.col], sampler.row, S)
        adv = q - v_b[:, :S]
        # a state whose dose was never logged in the resample is not certified by it
        logged = _by_row(has.astype(float), sampler.row, S) > 0
        adv[~logged] = -np.inf
        advantages.append(adv)
    adv = np.concatenate(advantages)
    bounds = np.quantile(adv, level, axis=0)
    out[visited[tested]] = bounds[tested]
    return out


def is_lower_bound(
    episodes: Episodes,
    action: np.ndarray,
    act: np.ndarray,
    behaviour: np.ndarray,
    *,
    delta: float = 0.05,
    seed: int = 0,
) -> float:
    """High-confidence lower bound on the gain by importance sampling (see the module docstring).

    ``behaviour`` (n_states, A) holds the clinicians' action probabilities used in the ratios
    (estimated on other stays than ``episodes``). Returns ``-1`` (the least possible gain)
    when fewer than 6 stays are given.
    """
    action = np.asarray(action, dtype=np.int64)
    act = np.asarray(act, dtype=float)
    _check(episodes, action, act, delta)
    ep = episodes
    s, a = ep.state, ep.action
    p_b = behaviour[s, a]
    dose = (a == action[s]).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_c = act[s] * dose + (1.0 - act[s]) * p_b
        ratio = np.where(p_b > 0, p_c / p_b, 0.0)
    log_rho = np.bincount(
        ep.episode, weights=np.log(np.maximum(ratio, 1e-300)), minlength=ep.n_episodes
    )
    rho = np.exp(np.minimum(log_rho, 700.0))
    last = np.ones(len(s), dtype=bool)
    last[:-1] = ep.first[1:]
    survived = np.zeros(ep.n_episodes)
    survived[ep.episode[last]] = (ep.next_state[last] == ep.survival).astype(float)
    y = rho * survived - survived + 1.0  # >= 0; mean = 1 + gain
    n = len(y)
    if n < 6:
        return -1.0
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    tune, rest = y[order[: n // 3]], y[order[n // 3 :]]
    grid = np.unique(np.quantile(tune, np.linspace(0.5, 1.0, 21)))
    grid = grid[grid > 0]
    if len(grid) == 0:
        return -1.0
    best = max(grid, key=lambda c: _hcope(tune, c, delta, len(rest)))
    return float(_hcope(rest, best, delta, len(rest)) - 1.0)


def _hcope(y: np.ndarray, c: float, delta: float, n: int) -> float:
    """Thomas et al. (AAAI 2015), Theorem 1 with one threshold ``c``: a ``1 - delta`` lower
    bound on the mean of non-negative ``y`` (evaluated as if ``n`` samples were used)."""
    z = np.minimum(y, c) / c
    m = len(z)
    if m < 2 or n < 2:
        return -np.inf
    var = z.var(ddof=1) if m > 1 else 0.0
    log_term = np.log(2.0 / delta)
    bound = z.mean() - 7.0 * log_term / (3.0 * (n - 1)) - np.sqrt(2.0 * log_term * var / n)
    return float(c * bound)
