"""The DTR benchmark: every model on the same splits, recommendation metrics and true mortality.

What ``safer benchmark`` runs. One cohort is simulated per run and split once by stay
(train / calibration / test, the same for every model and seed); for every model and seed:

1. fit on the train split (timed);
2. macro-AUC, micro-AUC, HR@3 and MRR@3 of the clinicians' actions on the **surviving** stays of
   the test split;
3. the true mortality of the ungated policy (the argmax of ``predict_proba``, rolled out on
   EHR-like rows in the ICU-Sepsis MDP);
4. a conformal gate ("lac", level ``alpha``) calibrated on the calibration split, and the true
   mortality of the gated policy (the model where the gate recommends, the clinicians where it
   abstains) with its abstention rate;
5. for the models in ``gate_models`` (default: SAFER), every gate in ``gates`` side by side --
   the paper's conformal selection (kappa, BH-FDR at ``alpha``), LAC, learn-then-test and the
   outcome-aware safe gate (``spi``, delta 0.05) -- each with its gated true mortality and
   abstention rate, in a second table.

Seeds vary the model's initialisation and the rollout draws; the split stays fixed, so the
spread over seeds is the spread of training, not of the data. Reference rows give the exact
mortality of the clinicians' and the optimal policy, and of the oracle one-step learner
(:mod:`safer.evaluation.ceiling`) given the true states of the same training stays: what this
much data supports even with the hidden state revealed.

Examples
--------
>>> from safer.evaluation.benchmark import run_benchmark
>>> result = run_benchmark(stays=60, seeds=[0], models=["safer-n", "cql"], episodes=20,
...                        overrides={"safer-n": {"epochs": 1}, "cql": {"n_steps": 100}},
...                        progress=False)  # doctest: +SKIP
>>> print(result.markdown())  # doctest: +SKIP
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from safer._json import to_plain
from safer._provenance import provenance, write_page
from safer.cohorts import simulate_cohort, split_stays
from safer.decisions import calibrate
from safer.errors import SaferError
from safer.evaluation.ceiling import oracle_ceiling
from safer.evaluation.experiments import score_split
from safer.evaluation.mortality import exact_mortality, rollout_mortality
from safer.evaluation.policies import GatedPolicy, ModelPolicy, clinician_policy, optimal_policy
from safer.models import MODEL_NAMES, make_model

__all__ = [
    "ORACLE",
    "BENCHMARK_METRICS",
    "BenchmarkResult",
    "benchmark_references",
    "benchmark_task",
    "default_models",
    "run_benchmark",
]

ORACLE = "oracle one-step, train stays' true states"
#: Gates side by side (``gates``): name -> (what the table calls it, calibrate() levels).
GATE_SETTINGS: dict[str, tuple[str, dict]] = {
    "selection": ("conformal selection (kappa, BH-FDR)", {}),
    "lac": ("LAC prediction sets", {}),
    "aps": ("APS prediction sets", {}),
    "raps": ("RAPS prediction sets", {}),
    "ltt": ("learn-then-test (delta 0.1)", {"delta": 0.1}),
    "spi": ("safe policy improvement (delta 0.05)", {"delta": 0.05}),
}
DEFAULT_GATES = ("selection", "lac", "ltt", "spi")
BENCHMARK_METRICS = ("macro_auc", "micro_auc", "hr_at_3", "mrr_at_3")
_COLUMNS = (
    *BENCHMARK_METRICS,
    "mortality_pct",
    "gated_mortality_pct",
    "abstention_pct",
    "fit_seconds",
)
_HEADINGS = {
    "macro_auc": "macro-AUC",
    "micro_auc": "micro-AUC",
    "hr_at_3": "HR@3",
    "mrr_at_3": "MRR@3",
    "mortality_pct": "mortality %",
    "gated_mortality_pct": "gated mortality %",
    "abstention_pct": "abstention %",
    "fit_seconds": "train s",
}


def default_models() -> tuple[str, ...]:
    """Every registered model: the SAFER variants and all baselines (``MODEL_NAMES``)."""
    return MODEL_NAMES


def make_benchmark_model(name: str, seed: int, **overrides: Any):
    """An unfitted model by name (anything :func:`safer.models.make_model` builds)."""
    return make_model(name, seed=seed, **overrides)


@dataclass
class BenchmarkResult:
    """Per-run rows (one per model and seed), reference mortalities and run settings.

    ``runs`` columns: model, seed, the four metrics, mortality_pct, gated_mortality_pct,
    abstention_pct (absolute percentages of episodes / decisions), fit_seconds.
    """

    runs: pd.DataFrame
    references: dict[str, float]  # policy -> exact mortality in percent
    settings: dict[str, Any] = field(default_factory=dict)
    gate_runs: pd.DataFrame = field(default_factory=pd.DataFrame)  # model, seed, gate, ...

    def summary(self) -> pd.DataFrame:
        """Mean and sample sd over seeds per model (sd is NaN with one seed)."""
        grouped = self.runs.groupby("model", sort=False)[list(_COLUMNS)]
        mean, sd = grouped.mean(), grouped.std(ddof=1)
        return mean.add_suffix("_mean").join(sd.add_suffix("_sd"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: settings, per-model mean/sd, the per-seed runs and the references."""
        summary = self.summary()
        models = {
            name: {c: {"mean": row[f"{c}_mean"], "sd": row[f"{c}_sd"]} for c in _COLUMNS}
            for name, row in summary.iterrows()
        }
        return to_plain(
            {
                "settings": self.settings,
                "units": "mortality and abstention: absolute percent of episodes / decisions",
                "models": models,
                "runs": self.runs.to_dict("records"),
                "gate_runs": self.gate_runs.to_dict("records"),
                "references_mortality_pct": self.references,
            }
        )

    def markdown(self, command: str = "") -> str:
        """The table of ``docs/benchmarks/dtr.md`` with its provenance header."""
        s = self.settings
        lines = [
            "# DTR benchmark: recommendation metrics and true mortality\n",
            provenance(command),
            f"Cohort: {s['stays']} simulated stays (seed {s['cohort_seed']}), one stay-level "
            f"split (seed {s['split_seed']}): {s['split_sizes']}. Seeds {s['seeds']} vary model "
            f"initialisation and rollouts. Metrics: surviving stays of the test split. "
            f"Mortality: absolute, % of {s['episodes']} simulated episodes per policy and seed "
            f"(true mortality in the ICU-Sepsis MDP, policy acting on EHR-like rows). Gate: "
            f'"lac" at alpha {s["alpha"]} calibrated on the calibration split; where it '
            "abstains the clinicians' policy acts. Values: mean ± sd over seeds. The oracle "
            "row is a tabular one-step policy improvement learned from the true MDP states of "
            "the same training stays (safer.evaluation.ceiling): what this much data supports "
            "with the hidden state revealed.\n",
            "| model | " + " | ".join(_HEADINGS[c] for c in _COLUMNS) + " |",
            "|---|" + "---:|" * len(_COLUMNS),
        ]
        summary = self.summary()
        for name, row in summary.iterrows():
            cells = [_cell(row[f"{c}_mean"], row[f"{c}_sd"], c) for c in _COLUMNS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for label, value in self.references.items():
            cells = [f"{value:.1f}" if c == "mortality_pct" else "" for c in _COLUMNS]
            lines.append(f"| {label} (exact) | " + " | ".join(cells) + " |")
        if not self.gate_runs.empty:
            lines += [
                "",
                "Gates side by side (each calibrated on the calibration split; where a gate "
                "abstains the clinicians' policy acts). Mean ± sd over seeds.\n",
                "| model | gate | gated mortality % | abstention % |",
                "|---|---|---:|---:|",
            ]
            grouped = self.gate_runs.groupby(["model", "gate"], sort=False)
            for (model, gate), g in grouped:
                label = GATE_SETTINGS.get(gate, (gate, {}))[0]
                cells = [
                    _cell(g[c].mean(), g[c].std(ddof=1), c)
                    for c in ("gated_mortality_pct", "abstention_pct")
                ]
                lines.append(f"| {model} | {label} (`{gate}`) | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def run_benchmark(
    *,
    stays: int = 1000,
    seeds: list[int] | tuple[int, ...] = (0, 1, 2),
    models: list[str] | tuple[str, ...] | None = None,
    episodes: int = 500,
    alpha: float = 0.1,
    cohort_seed: int = 0,
    split_seed: int = 0,
    overrides: dict[str, dict[str, Any]] | None = None,
    gates: list[str] | tuple[str, ...] = DEFAULT_GATES,
    gate_models: list[str] | tuple[str, ...] | None = None,
    progress: bool = True,
    ray: str | None = None,
) -> BenchmarkResult:
    """Train every model on the same splits and measure metrics and true mortality.

    Parameters
    ----------
    stays : int
        Simulated stays in the cohort (simulated once).
    seeds : sequence of int
        Model and rollout seeds.
    models : sequence of str, optional
        Model names (default :func:`default_models`).
    episodes : int
        Rollout episodes per policy and seed.
    alpha : float
        Level of the "lac" conformal gate.
    overrides : dict, optional
        Model name -> config overrides (e.g. ``{"safer": {"epochs": 3}, "cql": {"n_steps":
        2000}}``).
    gates : sequence of str
        Gate methods compared side by side (:data:`GATE_SETTINGS`) on ``gate_models``.
    gate_models : sequence of str, optional
        Models the gates are compared on (default: ``"safer"`` if benchmarked, else none).
    progress : bool
        tqdm bars for simulation, training and rollouts (on stderr; with ``ray``, one bar over
        finished tasks).
    ray : str, optional
        Run one Ray task per (model, seed), and one for the reference rows, on a Ray cluster:
        ``"auto"`` (the cluster ``ray start`` runs on this machine, or the one this process is
        connected to), an address (``"HOST:6379"``, ``"ray://HOST:10001"``) or ``"local"``
        (start one here). Needs the ``scale`` extra; ``None`` (default): serially in this
        process, without importing Ray. The table is the serial one (training times aside):
        every task depends on its seed only. Ray starts while a thread simulates the cohort,
        its workers import the models before the tasks exist, and the tasks are submitted
        longest first (gate models with more gates first; see ``_task_cost``). A failed task
        is retried twice, then reported.

    Examples
    --------
    >>> run_benchmark(stays=60, seeds=[], progress=False)
    Traceback (most recent call last):
    ...
    safer.errors.SaferError: give at least one seed (e.g. --seeds 0 1 2)
    """
    models = tuple(models) if models else default_models()
    seeds = [int(s) for s in seeds]
    overrides = overrides or {}
    if not seeds:
        raise SaferError("give at least one seed (e.g. --seeds 0 1 2)")
    if episodes < 1:
        raise SaferError(f"episodes must be >= 1, got {episodes}")
    unknown = sorted(set(overrides) - set(models))
    if unknown:
        raise SaferError(f"overrides for models not benchmarked: {unknown}; models: {models}")
    for name in models:  # fail fast on unknown names, before any training
        make_benchmark_model(name, 0, **overrides.get(name, {}))
    unknown_gates = sorted(set(gates) - set(GATE_SETTINGS))
    if unknown_gates:
        raise SaferError(f"unknown gates {unknown_gates}; known: {', '.join(GATE_SETTINGS)}")
    gate_models = tuple(gate_models) if gate_models is not None else (
        ("safer",) if "safer" in models else ()
    )  # fmt: skip
    missing = sorted(set(gate_models) - set(models))
    if missing:
        raise SaferError(f"gate models {missing} are not benchmarked; models: {models}")

    tasks = [(name, seed) for name in models for seed in seeds]
    common = dict(
        episodes=episodes, alpha=alpha, split_seed=split_seed, overrides=overrides,
        gates=tuple(gates), gate_models=gate_models,
    )  # fmt: skip
    if ray is None:
        cohort = simulate_cohort(n_stays=stays, seed=cohort_seed, progress=progress)
    else:  # Ray starts (ray.init wants the main thread) while a thread simulates the cohort
        from safer.evaluation._ray import connect, run_tasks

        with ThreadPoolExecutor(max_workers=1) as pool:
            simulating = pool.submit(
                simulate_cohort, n_stays=stays, seed=cohort_seed, progress=progress
            )
            connect(ray, warm=_ray_task, workers=len(tasks) + 1)  # workers import the models
            cohort = simulating.result()
    splits = split_stays(cohort, seed=split_seed)
    if splits.subset(cohort, "calibration").empty or splits.subset(cohort, "test").empty:
        raise SaferError(f"{stays} stays leave an empty calibration or test split; use more")
    if ray is None:
        results = [
            benchmark_task(name, seed, cohort, splits, progress=progress, **common)
            for name, seed in tasks
        ]
        references = benchmark_references(cohort, splits)
    else:  # the references are one more task, run beside the models
        cost = _task_cost(gates, gate_models)
        *results, references = run_tasks(
            _ray_task, [*tasks, _REFERENCES], cohort, splits, address=ray, progress=progress,
            label=_task_label, cost=cost, **common,
        )  # fmt: skip
    rows = [row for row, _ in results]
    gate_rows = [g for _, gates_of in results for g in gates_of]
    sizes = {s: int(splits.subset(cohort, s)["stay_id"].nunique())
             for s in ("train", "calibration", "test")}  # fmt: skip
    settings = {
        "stays": stays, "seeds": seeds, "models": list(models), "episodes": episodes,
        "alpha": alpha, "cohort_seed": cohort_seed, "split_seed": split_seed,
        "split_sizes": sizes, "overrides": overrides, "gates": list(gates),
        "gate_models": list(gate_models),
    }  # fmt: skip
    runs = pd.DataFrame(rows).astype({c: float for c in _COLUMNS})
    return BenchmarkResult(runs, references, settings, pd.DataFrame(gate_rows))


def benchmark_task(
    name: str,
    seed: int,
    cohort: pd.DataFrame,
    splits,
    *,
    episodes: int,
    alpha: float,
    split_seed: int,
    overrides: dict[str, dict[str, Any]],
    gates: tuple[str, ...],
    gate_models: tuple[str, ...],
    progress: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One model and seed of :func:`run_benchmark`: its row and its gate rows.

    Depends on its arguments only (the model, gate and rollout seeds are ``seed``), so it gives
    the same numbers serially or as a Ray task (``fit_seconds`` aside).
    """
    train = splits.subset(cohort, "train")
    calibration = splits.subset(cohort, "calibration")
    model = make_benchmark_model(name, seed, **overrides.get(name, {}))
    start = time.perf_counter()
    model.fit(train, progress=progress, split_seed=split_seed)
    fit_seconds = time.perf_counter() - start
    scores = score_split(model, cohort, splits, "test")["survivors"]
    gate = calibrate(model, train, calibration, method="lac", alpha=alpha, seed=seed)
    plain = rollout_mortality(ModelPolicy(model, name=name), episodes, seed, progress=progress)
    gated = rollout_mortality(
        GatedPolicy(model, gate, name=f"gated {name}"), episodes, seed, progress=progress
    )
    row = {
        "model": name,
        "seed": seed,
        **{m: scores.get(m) for m in BENCHMARK_METRICS},
        "mortality_pct": 100 * plain.mortality,
        "gated_mortality_pct": 100 * gated.mortality,
        "abstention_pct": 100 * (gated.abstention_rate or 0.0),
        "fit_seconds": fit_seconds,
    }
    gate_rows = []
    if name in gate_models:
        for method in gates:
            levels = GATE_SETTINGS[method][1]
            g = gate if method == "lac" else calibrate(
                model, train, calibration, method=method, alpha=alpha, seed=seed, **levels,
            )  # fmt: skip
            roll = gated if method == "lac" else rollout_mortality(
                GatedPolicy(model, g, name=f"{method} {name}"), episodes, seed,
                progress=progress,
            )  # fmt: skip
            gate_rows.append(
                {
                    "model": name, "seed": seed, "gate": method,
                    "gated_mortality_pct": 100 * roll.mortality,
                    "abstention_pct": 100 * (roll.abstention_rate or 0.0),
                }
            )  # fmt: skip
    return row, gate_rows


def benchmark_references(cohort: pd.DataFrame, splits) -> dict[str, float]:
    """The reference rows of :func:`run_benchmark`: the exact mortality (percent) of the
    clinicians' and the optimal policy, and of the oracle one-step learner given the true states
    of the training stays.

    Computed with one BLAS thread (no slower for these small matrices): the last digits of a
    matrix product depend on OpenBLAS's thread count, and a Ray worker has one, so the serial
    and the Ray path give the same floats.
    """
    with threadpool_limits(limits=1):
        return {
            "clinicians": 100 * exact_mortality(clinician_policy()),
            "optimal": 100 * exact_mortality(optimal_policy()),
            ORACLE: 100 * oracle_ceiling(splits.subset(cohort, "train")).mortality["one-step"],
        }


# The Ray path's task for the references (a (model, seed) task of no model).
_REFERENCES = (None, None)


def _ray_task(name: str | None, seed: int | None, cohort: pd.DataFrame, splits, **common: Any):
    """One Ray task of :func:`run_benchmark`: :func:`benchmark_task` of a (model, seed), or
    :func:`benchmark_references` for :data:`_REFERENCES`."""
    if name is None:
        return benchmark_references(cohort, splits)
    return benchmark_task(name, seed, cohort, splits, **common)


def _task_label(task: tuple) -> str:
    name, seed = task
    return "references" if name is None else f"{name} seed {seed}"


def _task_cost(gates: tuple[str, ...] | list[str], gate_models: tuple[str, ...]):
    """The rule that orders the Ray tasks, longest first: a model costs one fit, score and two
    rollouts (1), plus one calibration and rollout per gate other than "lac" (reused) when it is
    a gate model; the references (exact evaluations and a tabular oracle: seconds) cost 0. Equal
    costs keep the order of ``models`` -- list the slower models first."""
    extra = len([g for g in gates if g != "lac"])

    def cost(task: tuple) -> float:
        name, _ = task
        if name is None:
            return 0.0
        return 1.0 + (extra if name in gate_models else 0)

    return cost


def write_markdown(result: BenchmarkResult, path: str | Path, command: str = "") -> Path:
    """Write :meth:`BenchmarkResult.markdown` to ``path`` (folders created)."""
    return write_page(path, result.markdown(command))


def _cell(mean: float, sd: float, column: str) -> str:
    if mean is None or not np.isfinite(mean):
        return "n/a"
    digits = 1 if column.endswith("_pct") or column == "fit_seconds" else 3
    if sd is None or not np.isfinite(sd):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"
