"""True counterfactual mortality of a policy in the known ICU-Sepsis MDP.

Two ways, both giving **absolute mortality** (fraction of episodes that end in death, 0..1; no
discount, reward 1 for survival):

- :func:`exact_mortality` — policy evaluation on the transition matrices (solve the absorbing
  chain); only for state-based policies (``policy.matrix`` is set).
- :func:`rollout_mortality` — run episodes from the MDP's initial distribution, all live
  episodes stepping together, with a Wilson 95 % interval. State-based policies step on the
  matrices alone (fast); history-based policies (a recommender, a gated recommender) get, at each
  step, EHR-like rows from the same observation and note model as the simulated cohort and make
  one batched call for all live episodes.

:func:`true_mortality` does both where it can; :func:`mortality_table` is what ``safer demo``
prints: clinicians, optimal, SAFER, gated SAFER (with its abstention rate).

Examples
--------
>>> from safer.evaluation.policies import make_policy
>>> result = true_mortality(make_policy("clinician"), episodes=2000, seed=0, progress=False)
>>> result.method, round(result.mortality, 3)
('exact', 0.218)
>>> result.rollout.ci_low < 0.218 < result.rollout.ci_high
True
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import norm
from tqdm.auto import tqdm

from safer.cohorts.simulated import (
    FIRST_STAY_ID,
    MAX_STEPS,
    IcuSepsisMDP,
    ObservedEpisodes,
    SimulationConfig,
    load_mdp,
    rollout,
)
from safer.errors import SaferError
from safer.evaluation.policies import DeferringPolicy, Policy, StatePolicy

__all__ = [
    "UNITS",
    "RolloutResult",
    "MortalityResult",
    "wilson_interval",
    "exact_mortality",
    "rollout_mortality",
    "true_mortality",
    "mortality_table",
    "episode_outcomes",
]

_ACTION_COLUMNS = ("fluid_bin", "vaso_bin", "action", "fluid_ml", "vaso_ugkgmin")
UNITS = "absolute mortality: fraction of episodes ending in death (0-1), not a change"


@dataclass
class RolloutResult:
    """Mortality of a policy over simulated episodes, with a Wilson interval."""

    mortality: float
    ci_low: float
    ci_high: float
    episodes: int
    deaths: int
    truncated: int
    decisions: int
    abstention_rate: float | None
    seconds: float
    observed: bool  # whether the policy acted on EHR-like rows (else on the true state)


@dataclass
class MortalityResult:
    """What ``safer mortality`` reports: exact where possible, else the rollout estimate."""

    policy: str
    mortality: float
    ci_low: float
    ci_high: float
    episodes: int
    method: str  # "exact" or "rollout"
    exact: float | None = None
    rollout: RolloutResult | None = None
    ope: dict = field(default_factory=dict)
    units: str = UNITS

    def to_dict(self) -> dict:
        return asdict(self)


def wilson_interval(deaths: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    Examples
    --------
    >>> low, high = wilson_interval(20, 100)
    >>> round(low, 3), round(high, 3)
    (0.133, 0.289)
    """
    if n <= 0:
        raise SaferError("an interval needs at least one episode")
    z = float(norm.ppf(0.5 + level / 2))
    p = deaths / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def exact_mortality(policy: Policy, mdp: IcuSepsisMDP | None = None) -> float:
    """Exact mortality of a state-based policy from the transition matrices.

    Examples
    --------
    >>> from safer.evaluation.policies import optimal_policy
    >>> round(exact_mortality(optimal_policy()), 3)
    0.125
    """
    if not isinstance(policy, StatePolicy):
        raise SaferError(
            f"policy '{policy.name}' is not state-based, so it has no exact mortality; "
            "use rollout_mortality (safer mortality --episodes N)"
        )
    return (mdp or load_mdp()).exact_mortality(policy.matrix)


def rollout_mortality(
    policy: Policy,
    episodes: int = 20_000,
    seed: int = 0,
    *,
    observed: bool | None = None,
    config: SimulationConfig | None = None,
    max_steps: int = MAX_STEPS,
    progress: bool = True,
    level: float = 0.95,
    shard_size: int | None = None,
    jobs: int = 1,
    ray: str | None = None,
) -> RolloutResult:
    """Mortality of ``policy`` over ``episodes`` simulated ICU stays.

    Parameters
    ----------
    policy : Policy
    episodes : int
    seed : int
        Seed of every draw (initial states, transitions, observations, sampled actions).
    observed : bool, optional
        Generate EHR-like rows and let the policy act on them. Default: only for policies that
        are not state-based (state-based policies step on the matrices, which is much faster
        and gives the same distribution of outcomes).
    config : SimulationConfig, optional
        Observation noise, missingness and note fill (default: those of the simulated cohort).
    max_steps : int
        Episodes still alive after this many steps count as survivors (``truncated``).
    progress : bool
        Show a tqdm bar over finished episodes.
    level : float
        Confidence level of the Wilson interval.
    shard_size : int, optional
        Run the episodes in shards of this many (the last one smaller), shard ``k`` drawing
        from its own stream, ``numpy.random.SeedSequence(seed).spawn(n_shards)[k]``. The result
        then depends on ``seed`` and ``shard_size`` only. ``None`` (default): one stream,
        ``numpy.random.default_rng(seed)``, as in earlier versions.
    jobs : int
        Processes that run the shards (needs ``shard_size``; the result does not depend on it).
        Each process gets a copy of the policy (it must pickle) and one torch thread.
    ray : str, optional
        Run the shards as Ray tasks on the cluster at this address (``"auto"``,
        ``"HOST:PORT"``, ``"ray://HOST:PORT"`` or ``"local"``; needs ``shard_size`` and the
        ``scale`` extra). The policy goes to the object store once and every task reads it; a
        shard that fails is retried, then reported. Same result as ``jobs=1``.

    Examples
    --------
    >>> from safer.evaluation.policies import clinician_policy
    >>> run = lambda: rollout_mortality(  # three shards, each its own stream
    ...     clinician_policy(), 600, seed=1, shard_size=200, progress=False)
    >>> a, b = run(), run()
    >>> a.episodes, a.deaths == b.deaths
    (600, True)
    """
    if not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise SaferError(f"episodes must be a positive integer, got {episodes!r}")
    if shard_size is not None and shard_size < 1:
        raise SaferError(f"shard_size must be a positive integer, got {shard_size!r}")
    if jobs < 1 or (jobs > 1 and shard_size is None):
        raise SaferError(
            f"jobs={jobs}: pass jobs >= 1, and a shard_size to run shards in parallel (the "
            "result then depends on seed and shard_size only, so jobs=1 reproduces it)"
        )
    if ray is not None and (shard_size is None or jobs > 1):
        raise SaferError(
            f"ray={ray!r} runs shards as Ray tasks: pass a shard_size and leave jobs at 1 "
            f"(got shard_size={shard_size!r}, jobs={jobs})"
        )
    state_based = isinstance(policy, StatePolicy)
    observed = not state_based if observed is None else observed
    if not observed and not state_based:
        raise SaferError(f"policy '{policy.name}' needs observed rows: call with observed=True")
    start = time.perf_counter()
    if shard_size is None:
        parts = [
            _rollout_shard(
                policy, episodes, np.random.default_rng(seed), observed, config, max_steps, progress
            )
        ]
    else:
        sizes = [shard_size] * (episodes // shard_size) + (
            [episodes % shard_size] if episodes % shard_size else []
        )
        streams = np.random.SeedSequence(seed).spawn(len(sizes))
        tasks = [
            (n, seq, observed, config, max_steps) for n, seq in zip(sizes, streams, strict=True)
        ]
        parts = _run_shards(policy, tasks, jobs=jobs, ray=ray, progress=progress)
    died = np.concatenate([p[0] for p in parts])
    truncated = np.concatenate([p[1] for p in parts])
    decisions = sum(p[2] for p in parts)
    abstained = None if parts[0][3] is None else sum(p[3] for p in parts)
    deaths = int(died.sum())
    low, high = wilson_interval(deaths, episodes, level)
    return RolloutResult(
        mortality=deaths / episodes,
        ci_low=low,
        ci_high=high,
        episodes=int(episodes),
        deaths=deaths,
        truncated=int(truncated.sum()),
        decisions=int(decisions),
        abstention_rate=None if abstained is None else abstained / max(decisions, 1),
        seconds=time.perf_counter() - start,
        observed=observed,
    )


def _rollout_shard(policy, episodes, rng, observed, config, max_steps, progress=False):
    """``(died, truncated, decisions, abstained)`` of ``episodes`` drawn from ``rng`` (a
    Generator, or a SeedSequence to start one from)."""
    mdp = load_mdp()
    rng = np.random.default_rng(rng)
    if not observed:
        roll = rollout(mdp, policy.matrix, episodes, rng, max_steps=max_steps, progress=progress)
        return roll.died, roll.truncated, len(roll.stay), None
    died, truncated, decisions, abstained, _ = _observed_rollout(
        policy, mdp, episodes, rng, config, max_steps, progress
    )
    return died, truncated, decisions, abstained


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _run_shards(
    policy: Policy, tasks: list[tuple], *, jobs: int, ray: str | None, progress: bool
) -> list[tuple]:
    """``_rollout_shard(policy, *task)`` over ``tasks`` (``(episodes, stream, ...)``), in task
    order: here, in ``jobs`` processes, or as Ray tasks at ``ray`` (a failed shard raises:
    nothing is dropped)."""
    desc = f"rollout {policy.name}"
    if ray is not None:
        from safer.evaluation._ray import run_tasks

        return run_tasks(
            _shard_task, tasks, policy, address=ray, progress=progress, desc=desc,
            label=lambda task: f"shard of {task[0]} episodes",
        )  # fmt: skip
    bar = tqdm(total=sum(t[0] for t in tasks), desc=desc, unit="stay", disable=not progress)
    results: list[tuple | None] = [None] * len(tasks)
    if jobs == 1:
        for i, task in enumerate(tasks):
            results[i] = _rollout_shard(policy, *task)
            bar.update(task[0])
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("spawn")  # no forked torch or tqdm threads
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_one_thread) as pool:
            futures = {pool.submit(_rollout_shard, policy, *t): i for i, t in enumerate(tasks)}
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                bar.update(tasks[i][0])
    bar.close()
    return results


def _shard_task(episodes, stream, observed, config, max_steps, policy):
    """One rollout shard as a Ray task: the shard first, the shared policy last."""
    return _rollout_shard(policy, episodes, stream, observed, config, max_steps)


def _observed_rollout(policy, mdp, episodes, rng, config, max_steps, progress):
    states = mdp.sample_initial(episodes, rng)
    world = ObservedEpisodes(mdp, states, rng, config)
    alive = np.arange(episodes)
    died = np.zeros(episodes, dtype=np.int64)
    truncated = np.zeros(episodes, dtype=bool)
    history = first = None
    decisions = abstained = 0
    bar = tqdm(total=episodes, desc=f"rollout {policy.name}", unit="stay", disable=not progress)
    for t in range(max_steps):
        rows = world.observe(alive, t, states)
        first = rows if t == 0 else first
        history = rows if history is None else pd.concat([history, rows], ignore_index=True)
        decision = policy.decide(history, rng)
        # stay ids are FIRST_STAY_ID + episode, so increasing stay_id == increasing episode
        actions = decision.actions
        world.set_actions(rows, actions)
        tail = slice(len(history) - len(rows), None)
        for col in _ACTION_COLUMNS:
            history.iloc[tail, history.columns.get_loc(col)] = rows[col].to_numpy()
        decisions += len(alive)
        abstained += int(decision.deferred.sum())
        alive, states, ended = mdp.advance(alive, states, actions, died, rng)
        bar.update(ended)
        if len(alive) == 0:
            break
        history = history[np.isin(history["stay_id"].to_numpy() - FIRST_STAY_ID, alive)]
    else:
        truncated[alive] = True
    bar.close()
    rate = abstained if isinstance(policy, DeferringPolicy) else None
    return died, truncated, decisions, rate, first


def episode_outcomes(
    policy: Policy,
    episodes: int,
    seed: int = 0,
    *,
    config: SimulationConfig | None = None,
    max_steps: int = MAX_STEPS,
    progress: bool = False,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Per-episode outcomes of an observed rollout and each episode's admission row.

    Returns ``died`` (episodes,) 0/1 and the step-0 rows (one per episode, in episode order),
    so mortality can be broken down by what was charted at admission (age, SOFA, ...).

    Examples
    --------
    >>> from safer.evaluation.policies import clinician_policy
    >>> died, first = episode_outcomes(clinician_policy(), 50, seed=0)
    >>> died.shape, len(first)
    ((50,), 50)
    """
    mdp = load_mdp()
    rng = np.random.default_rng(seed)
    died, _, _, _, first = _observed_rollout(
        policy, mdp, episodes, rng, config, max_steps, progress
    )
    return died, first.reset_index(drop=True)


def true_mortality(
    policy: Policy,
    episodes: int = 20_000,
    seed: int = 0,
    *,
    progress: bool = True,
    config: SimulationConfig | None = None,
    shard_size: int | None = None,
    jobs: int = 1,
    ray: str | None = None,
) -> MortalityResult:
    """Exact mortality where the policy is state-based (plus the rollout), else the rollout.

    A policy that is exactly a state policy in disguise (a gated policy whose gate abstains
    everywhere is its fallback: ``exact_equivalent()``) is solved exactly too; its rollout is
    still run, for the abstention rate. ``shard_size``, ``jobs`` and ``ray``: see
    :func:`rollout_mortality`.
    """
    roll = rollout_mortality(
        policy, episodes, seed, progress=progress, config=config, shard_size=shard_size,
        jobs=jobs, ray=ray,
    )  # fmt: skip
    equivalent = getattr(policy, "exact_equivalent", lambda: None)()
    state_policy = policy if isinstance(policy, StatePolicy) else equivalent
    if state_policy is not None:
        exact = exact_mortality(state_policy)
        return MortalityResult(
            policy=policy.name,
            mortality=exact,
            ci_low=exact,  # no sampling error: the chain is solved exactly
            ci_high=exact,
            episodes=episodes,
            method="exact",
            exact=exact,
            rollout=roll,
        )
    return MortalityResult(
        policy=policy.name,
        mortality=roll.mortality,
        ci_low=roll.ci_low,
        ci_high=roll.ci_high,
        episodes=episodes,
        method="rollout",
        rollout=roll,
    )


def mortality_table(
    policies: dict[str, Policy], episodes: int = 20_000, seed: int = 0, *, progress: bool = True
) -> pd.DataFrame:
    """True mortality of several policies side by side (what ``safer demo`` ends with).

    Parameters
    ----------
    policies : dict
        Row label -> policy, e.g. ``{"clinicians": clinician_policy(), "optimal":
        optimal_policy(), "SAFER": ModelPolicy(m), "gated SAFER": GatedPolicy(m, gate)}``.

    Returns
    -------
    pandas.DataFrame
        One row per policy: ``mortality_pct`` (absolute, in percent), its 95 % interval,
        ``method``, ``episodes`` and ``abstention_pct`` (gated policies only).

    Examples
    --------
    >>> from safer.evaluation.policies import clinician_policy, optimal_policy
    >>> table = mortality_table({"clinicians": clinician_policy(), "optimal": optimal_policy()},
    ...                         episodes=500, progress=False)
    >>> table["mortality_pct"].round(1).tolist()
    [21.8, 12.5]
    """
    rows = []
    for label, policy in policies.items():
        res = true_mortality(policy, episodes, seed, progress=progress)
        rate = res.rollout.abstention_rate if res.rollout else None
        rows.append(
            {
                "policy": label,
                "mortality_pct": 100 * res.mortality,
                "ci_low_pct": 100 * res.ci_low,
                "ci_high_pct": 100 * res.ci_high,
                "method": res.method,
                "episodes": res.episodes,
                "abstention_pct": None if rate is None else 100 * rate,
            }
        )
    table = pd.DataFrame(rows)
    table.attrs["units"] = "absolute mortality in percent of episodes (not a change)"
    return table
