"""The embedded default cohort: EHR-like stays simulated from the ICU-Sepsis MDP.

Trajectories are rolled out under a state-based policy (by default the clinicians' policy that
ICU-Sepsis ships) from the MDP's initial distribution until death or survival. Every step becomes a
cohort row: noisy, partly missing features in clinical units
(:mod:`safer.cohorts.simulated.observation`), the clinician's action with a dose sampled inside its
bin, and a note written from the true state (:mod:`safer.cohorts.simulated.notes`). The true state
and SOFA are kept in hidden ``true_state`` / ``true_sofa`` columns. Because the dynamics are known,
the cohort's mortality converges to the exact mortality of the policy in the MDP (21.8 % for the
clinicians).

The rollout is vectorised across stays: each step samples every live stay's action and next
state at once.

Examples
--------
>>> from safer.cohorts import simulate_cohort, summarize
>>> cohort = simulate_cohort(n_stays=50, seed=1, progress=False)
>>> summarize(cohort)["stays"]
50
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from safer._atomic import atomic_file
from safer.actions import FLUID_BINS, N_LEVELS, VASO_BINS
from safer.cohorts.schema import FEATURES, validate
from safer.cohorts.simulated._rows import cohort_rows, draw_admissions, statics_at
from safer.cohorts.simulated.mdp import IcuSepsisMDP, load_mdp
from safer.cohorts.simulated.notes import NOTE_FILL, compose_notes, draw_notes
from safer.cohorts.simulated.observation import ObservationModel
from safer.errors import SaferError

__all__ = [
    "SimulationConfig",
    "simulate_cohort",
    "simulate_to_parquet",
    "rollout",
    "Rollout",
    "sample_doses",
]

MAX_STEPS = 500  # the ICU-Sepsis environment's own episode cap
_FIRST_STAY_ID = 200_001


@dataclass
class SimulationConfig:
    """Knobs of the simulated cohort (defaults give the documented embedded cohort).

    Examples
    --------
    >>> from safer.cohorts import SimulationConfig, simulate_cohort
    >>> config = SimulationConfig(missingness=False)
    >>> cohort = simulate_cohort(n_stays=3, seed=0, config=config, progress=False)
    >>> int(cohort["Arterial_lactate"].isna().sum())
    0
    """

    noise_scale: float = 0.6
    rho: float = 0.6
    missingness: bool = True
    note_fill: float = NOTE_FILL
    max_steps: int = MAX_STEPS
    #: tilt of the initial states towards higher SOFA (:meth:`IcuSepsisMDP.sicker_initial`);
    #: 0 = the MDP's own initial distribution. A shifted population, e.g. for drift checks.
    shift: float = 0.0


@dataclass
class Rollout:
    """Long arrays, one entry per (stay, step), sorted by stay then step.

    Examples
    --------
    >>> from safer.cohorts.simulated import load_mdp, rollout
    >>> mdp = load_mdp()
    >>> out = rollout(mdp, mdp.expert_policy, n_stays=4, rng=np.random.default_rng(0))
    >>> len(out.died), len(out.stay) == len(out.action)
    (4, True)
    """

    stay: np.ndarray
    step: np.ndarray
    state: np.ndarray
    action: np.ndarray
    died: np.ndarray  # per stay
    truncated: np.ndarray  # per stay: hit max_steps before a terminal state


def rollout(
    mdp: IcuSepsisMDP,
    policy: np.ndarray,
    n_stays: int,
    rng: np.random.Generator,
    *,
    max_steps: int = MAX_STEPS,
    progress: bool = False,
    initial: np.ndarray | None = None,
) -> Rollout:
    """Roll ``n_stays`` episodes of a state-based policy, vectorised across stays (from
    ``initial``, default the MDP's initial distribution)."""
    policy = mdp.check_policy(policy)
    states = mdp.sample_initial(n_stays, rng, initial)
    alive = np.arange(n_stays)
    died = np.zeros(n_stays, dtype=np.int64)
    truncated = np.zeros(n_stays, dtype=bool)
    chunks: list[tuple[np.ndarray, int, np.ndarray, np.ndarray]] = []
    bar = tqdm(total=n_stays, desc="rollout", unit="stay", disable=not progress, leave=False)
    for t in range(max_steps):
        actions = mdp.sample_actions(policy, states, rng)
        chunks.append((alive, t, states, actions))
        alive, states, ended = mdp.advance(alive, states, actions, died, rng)
        bar.update(ended)
        if len(alive) == 0:
            break
    else:
        truncated[alive] = True
    bar.close()
    stay = np.concatenate([c[0] for c in chunks])
    step = np.concatenate([np.full(len(c[0]), c[1]) for c in chunks])
    state = np.concatenate([c[2] for c in chunks])
    action = np.concatenate([c[3] for c in chunks])
    order = np.lexsort((step, stay))
    return Rollout(stay[order], step[order], state[order], action[order], died, truncated)


def sample_doses(actions: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A dose inside each action's bins: (IV fluid mL/4h, vasopressor ug/kg/min)."""
    fluid_bin, vaso_bin = actions // N_LEVELS, actions % N_LEVELS

    def draw(bins, idx, decimals):
        low = np.array([b.low for b in bins])[idx]
        high = np.array([b.high for b in bins])[idx]
        # log-uniform inside the bin reads like charted doses (many small, few large)
        lo = np.maximum(low, high * 0.05)
        dose = np.exp(rng.uniform(np.log(np.maximum(lo, 1e-9)), np.log(np.maximum(high, 1e-9))))
        dose = np.round(np.where(idx == 0, 0.0, dose), decimals)
        # keep a rounded dose inside its bin's (low, high]
        step = 10.0**-decimals
        return np.where(idx == 0, 0.0, np.clip(dose, low + step, high))

    return draw(FLUID_BINS, fluid_bin, 0), draw(VASO_BINS, vaso_bin, 3)


def simulate_cohort(
    n_stays: int = 2000,
    seed: int = 0,
    *,
    policy: np.ndarray | None = None,
    config: SimulationConfig | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Simulate a cohort table from the ICU-Sepsis MDP.

    Parameters
    ----------
    n_stays : int
        Number of ICU stays.
    seed : int
        Seed of every random draw; the same seed gives the same table.
    policy : ndarray (713 or 716, 25), optional
        State-based treatment policy; default the clinicians' policy shipped with ICU-Sepsis.
    config : SimulationConfig, optional
        Observation noise, missingness, note fill.
    progress : bool
        Show progress bars.

    Returns
    -------
    pandas.DataFrame
        A validated cohort table (see :mod:`safer.cohorts.schema`).
    """
    _check_stays(n_stays)
    df = _simulate(n_stays, np.random.default_rng(seed), _FIRST_STAY_ID, policy, config, progress)
    df.attrs["seed"] = seed
    return validate(df)


def simulate_to_parquet(
    path: str | Path,
    n_stays: int,
    seed: int = 0,
    *,
    chunk_stays: int = 20_000,
    policy: np.ndarray | None = None,
    config: SimulationConfig | None = None,
    progress: bool = True,
) -> dict:
    """Simulate a large cohort chunk by chunk, streamed to one parquet file (bounded memory).

    Each chunk of ``chunk_stays`` stays is simulated with its own random stream, spawned from
    ``seed`` (:class:`numpy.random.SeedSequence`), validated, appended and dropped, so peak
    memory follows the chunk size, not ``n_stays``. Stay ids run on across chunks. The same
    ``seed`` and ``chunk_stays`` give the same file; a chunked table is a different (equally
    valid) draw from the one-shot :func:`simulate_cohort` with the same seed. The file is
    written under a temporary name and moved into place only when complete.

    Returns
    -------
    dict
        ``stays``, ``rows``, ``chunks``, ``truncated_stays``, ``seed``, ``chunk_stays``.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> path = Path(tempfile.mkdtemp()) / "c.parquet"
    >>> simulate_to_parquet(path, 5, seed=0, chunk_stays=2, progress=False)["chunks"]
    3
    >>> pd.read_parquet(path)["stay_id"].nunique()
    5
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    _check_stays(n_stays)
    _check_stays(chunk_stays, "chunk_stays")
    path = Path(path)
    if path.suffix != ".parquet":
        raise SaferError(f"a streamed cohort is written as parquet; got {path.name!r}")
    sizes = [min(chunk_stays, n_stays - lo) for lo in range(0, n_stays, chunk_stays)]
    streams = np.random.SeedSequence(seed).spawn(len(sizes))
    summary = {"stays": n_stays, "rows": 0, "chunks": len(sizes), "truncated_stays": 0,
               "seed": seed, "chunk_stays": chunk_stays}  # fmt: skip
    with atomic_file(path) as tmp:
        writer, first_id, schema = None, _FIRST_STAY_ID, None
        bar = tqdm(total=n_stays, desc="simulate", unit="stay", disable=not progress)
        try:
            for size, stream in zip(sizes, streams, strict=True):
                df = validate(_simulate(size, np.random.default_rng(stream), first_id, policy,
                                        config, progress=False))  # fmt: skip
                summary["rows"] += len(df)
                summary["truncated_stays"] += df.attrs["truncated_stays"]
                table = pa.Table.from_pandas(df, preserve_index=False, schema=schema)
                if writer is None:
                    schema = table.schema
                    writer = pq.ParquetWriter(tmp, schema)
                writer.write_table(table)
                first_id += size
                bar.update(size)
        finally:
            bar.close()
            if writer is not None:
                writer.close()
    return summary


def _check_stays(n: object, name: str = "n_stays") -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise SaferError(f"{name} must be a positive integer, got {n!r}")


def _simulate(n_stays, rng, first_stay_id, policy, config, progress) -> pd.DataFrame:
    cfg = config or SimulationConfig()
    mdp = load_mdp()
    policy = mdp.expert_policy if policy is None else policy
    initial = mdp.sicker_initial(cfg.shift) if cfg.shift else None
    roll = rollout(mdp, policy, n_stays, rng, max_steps=cfg.max_steps, progress=progress,
                   initial=initial)  # fmt: skip

    obs = ObservationModel(noise_scale=cfg.noise_scale, rho=cfg.rho, missingness=cfg.missingness)
    first = roll.step == 0
    statics = obs.draw_statics(mdp.centers, roll.state[first], rng)
    features = np.empty((len(roll.stay), len(FEATURES)))
    row_of_stay_step = _rows_by_step(roll)
    eps = None
    for t, rows in enumerate(tqdm(row_of_stay_step, desc="observe", unit="step",
                                  disable=not progress, leave=False)):  # fmt: skip
        stays = roll.stay[rows]
        st = statics_at(statics, stays)
        x, eps_t = obs.observe(mdp.centers, mdp.sofa, roll.state[rows], st,
                               None if t == 0 else eps[stays], rng)  # fmt: skip
        if t == 0:
            eps = np.zeros((n_stays, len(FEATURES)))
        eps[stays] = eps_t
        features[rows] = x

    prev_state = np.where(roll.step > 0, np.roll(roll.state, 1), -1)
    n_rows = len(roll.stay)
    draws = [draw_notes(hi - lo, rng, note_fill=cfg.note_fill) for lo, hi in _chunks(n_rows)]
    fluid_ml, vaso = sample_doses(roll.action, rng)
    # a note quotes the doses given in the stay's previous block (none at its first step)
    first_step = roll.step == 0
    given = (np.where(first_step, np.nan, np.roll(fluid_ml, 1)),
             np.where(first_step, np.nan, np.roll(vaso, 1)))  # fmt: skip
    note_text, minutes_before = _notes_with_progress(mdp, roll, prev_state, draws, given, progress)
    admit = draw_admissions(n_stays, rng)  # last draw: a seed's table depends on this order
    df = cohort_rows(
        mdp=mdp,
        first_stay_id=first_stay_id,
        stay=roll.stay,
        step=roll.step,
        admit=admit,
        statics=statics,
        features=features,
        notes=note_text,
        minutes_before=minutes_before,
        true_state=roll.state,
        treatment=(roll.action, fluid_ml, vaso),
        died=roll.died,
    )
    df.attrs["truncated_stays"] = int(roll.truncated.sum())
    return df


def _rows_by_step(roll: Rollout) -> list[np.ndarray]:
    order = np.argsort(roll.step, kind="stable")
    bounds = np.searchsorted(roll.step[order], np.arange(roll.step.max() + 2))
    return [order[bounds[t] : bounds[t + 1]] for t in range(len(bounds) - 1)]


_NOTE_CHUNK = 20_000


def _chunks(n: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + _NOTE_CHUNK, n)) for lo in range(0, n, _NOTE_CHUNK)]


def _notes_with_progress(mdp, roll, prev_state, draws, given, progress):
    n = len(roll.stay)
    texts: list[str] = []
    minutes = np.empty(n)
    with tqdm(total=n, desc="notes", unit="note", disable=not progress, leave=False) as bar:
        for (lo, hi), d in zip(_chunks(n), draws, strict=True):
            rows = slice(lo, hi)
            texts += compose_notes(mdp, roll.state[rows], prev_state[rows], roll.step[rows], d,
                                   prev_fluid=given[0][rows], prev_vaso=given[1][rows])  # fmt: skip
            minutes[lo:hi] = d.minutes
            bar.update(hi - lo)
    return texts, minutes
