"""The safe gate's safety test, checked by simulation over 100 seeds (``slow``).

The paired bootstrap is approximate, so its error rate is measured: on 100 small random MDPs
(12 states, 25 doses, clinicians using 5 doses per state, exact values known), a cohort of
1,000 logged stays is split by stay (60 % train, 20 % calibration, as the gate does); candidates
are built on the training stays and tested on the calibration stays at delta = 0.05, as
:class:`safer.conformal.methods.spi.SafePolicyImprovement` does. The states are the true ones
here (the Markov case the test's model assumes); with decoded states the benchmark
(``docs/benchmarks/safe_gate.md``) checks the same promise across seeds.

Candidates: the gate's own (one-step, trusted doses), the gate's with ``select="bound"`` (its
``n_wedge`` and ``margin`` chosen on the training stays by the predicted lower bound,
:func:`~safer.conformal.methods.spi.select_knobs`), an overfitted one (every dose logged once
is trusted, no shrinkage) and a deliberately harmful one (in every state, the worst trusted
dose by the training estimate, where it is worse than the clinicians' mix).
"""

from __future__ import annotations

import numpy as np
import pytest

from safer.conformal.methods.spi import _propose, select_knobs
from safer.conformal.spi import Episodes, TabularModel, paired_bootstrap, survival_values

pytestmark = pytest.mark.slow

S, A = 12, 25
DELTA = 0.05
SEEDS = range(100)
N_STAYS = 1000


def small_mdp(rng: np.random.Generator):
    """Transitions (S, A, S + 2), the clinicians' policy (S, A) and the initial distribution."""
    death = rng.uniform(0.01, 0.06, S)
    leave = rng.uniform(0.1, 0.25, S)
    P = np.zeros((S, A, S + 2))
    d = np.clip(death[:, None] + rng.normal(0, 0.02, (S, A)), 0.002, 0.3)
    P[:, :, :S] = rng.dirichlet(np.full(S, 0.3), size=(S, A)) * (1 - d - leave[:, None])[..., None]
    P[:, :, S], P[:, :, S + 1] = d, leave[:, None]
    pi_b = np.zeros((S, A))
    for s in range(S):
        pi_b[s, rng.choice(A, 5, replace=False)] = rng.dirichlet(np.ones(5))
    return P, pi_b, rng.dirichlet(np.ones(S))


def value(P, policy, d0) -> float:
    return float(d0 @ survival_values(np.einsum("sa,sat->st", policy, P)[None])[0, :S])


def logged_stays(P, pi_b, d0, n, rng):
    """All ``n`` stays stepped together: per-decision state, stay, step, action, died."""
    state = rng.choice(S, size=n, p=d0)
    alive = np.arange(n)
    rows, died = [], np.zeros(n, dtype=int)
    for step in range(10_000):
        u = rng.random((len(alive), 1))
        action = (pi_b[state].cumsum(axis=1) < u).sum(axis=1)
        nxt = (P[state, action].cumsum(axis=1) < rng.random((len(alive), 1))).sum(axis=1)
        nxt = np.minimum(nxt, S + 1)
        rows.append((state, alive, np.full(len(alive), step), action))
        ended = nxt >= S
        died[alive[ended]] = nxt[ended] == S
        alive, state = alive[~ended], nxt[~ended]
        if len(alive) == 0:
            break
    s, stay, step, action = (np.concatenate(c) for c in zip(*rows, strict=True))
    return s, stay, step, action, died[stay]


def _episodes(logged, mask) -> Episodes:
    return Episodes.from_decisions(*(column[mask] for column in logged), n_states=S)


def candidates(train: Episodes, n_cal_stays: int, seed: int):
    shrunk = TabularModel(train, prior=10.0)
    q = shrunk.q_values(shrunk.evaluate(shrunk.behaviour))
    mix = (shrunk.behaviour * q).sum(axis=1)
    trusted = shrunk.n_sa >= 20
    worst = np.where(trusted, q, np.inf).argmin(axis=1)
    harmful = trusted.any(axis=1) & (q[np.arange(S), worst] < mix - 1e-9)
    out = {"harmful": (worst, harmful)}
    for name, model, n_wedge in (("gate", shrunk, 20), ("overfitted", TabularModel(train), 1)):
        pick = _propose(model, "one-step", n_wedge, 0.0)
        out[name] = (np.maximum(pick.dose, 0), pick.dose >= 0)
    n_wedge, margin, _ = select_knobs(
        train, select="bound", n_cal_stays=n_cal_stays, delta=DELTA, prior=10.0, seed=seed
    )
    pick = _propose(shrunk, "one-step", n_wedge, margin)
    out["selected"] = (np.maximum(pick.dose, 0), pick.dose >= 0)
    return out


@pytest.fixture(scope="module")
def outcomes():
    """Per candidate: (deployed, truly worse than the clinicians) over the seeds."""
    result: dict[str, list[tuple[bool, bool]]] = {
        "gate": [], "selected": [], "overfitted": [], "harmful": []
    }  # fmt: skip
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        P, pi_b, d0 = small_mdp(rng)
        logged = logged_stays(P, pi_b, d0, N_STAYS, rng)
        stay = logged[1]
        train, cal = stay < 0.6 * N_STAYS, (stay >= 0.6 * N_STAYS) & (stay < 0.8 * N_STAYS)
        held_out = _episodes(logged, cal)
        v_b = value(P, pi_b, d0)
        n_cal = len(np.unique(stay[cal]))
        for name, (dose, act) in candidates(_episodes(logged, train), n_cal, seed).items():
            test = paired_bootstrap(
                held_out, dose, act.astype(float), delta=DELTA, n_boot=300, seed=seed
            )
            policy = pi_b.copy()
            policy[act] = np.eye(A)[dose[act]]
            result[name].append((test.lower > 0, value(P, policy, d0) < v_b - 1e-12))
    return {k: np.array(v) for k, v in result.items()}


@pytest.mark.parametrize("name", ["gate", "selected", "overfitted", "harmful"])
def test_a_deployed_policy_is_worse_than_the_clinicians_in_at_most_delta_of_the_seeds(
    outcomes, name
):
    deployed, worse = outcomes[name].T
    assert (deployed & worse).mean() <= DELTA


def test_a_harmful_candidate_is_refused_in_at_least_1_minus_delta_of_the_seeds(outcomes):
    deployed, worse = outcomes["harmful"].T
    assert worse.all()  # it is harmful on every true MDP
    assert 1.0 - deployed.mean() >= 1.0 - DELTA


def test_the_test_has_power_where_the_candidate_helps(outcomes):
    deployed, worse = outcomes["gate"].T
    assert deployed.mean() >= 0.2 and not worse.any()
