"""The cost of ONE gated decision: ``safer.decisions.decide`` on a stay's rows up to a step.

Writes docs/benchmarks/decide_latency.md. A simulated cohort (``simulate_cohort``, split by
stay 60 / 20 / 20), a model per ``--variants`` fitted on the training stays (``bc-mlp`` without
notes, as in ``benchmarks/safe_gate.py``; ``safer`` is the default SAFER variant, with notes),
each gate of ``--gates`` calibrated (``spi`` at delta 0.05 with its defaults, ``lac`` at alpha
0.1), then ``--decisions`` single decisions on test stays, each as a rollout or the console makes
it: the stay's rows up to a random step (``current`` marks the last one), one ``decide`` call.
Reported per model and gate: median and 95th percentile of the wall time (``perf_counter``)
and of the process CPU time (``process_time``) of one call, after ``--warmup`` untimed calls,
pooled over ``--passes`` passes (each pass times every model and gate in turn, so a burst of
load on a shared machine falls on all of them), and the range of the passes' CPU medians.
SAFER's notes of the test stays are encoded once before timing (cached, as in a re-run; a note
never seen costs a sentence-encoder pass on top, see docs/benchmarks/model.md).

``--profile`` prints the cProfile of the decisions of the first model and gate (one more pass).

    PYTHONPATH=. python benchmarks/decide_latency.py --stays 1000 --variants bc-mlp safer \\
        --gates spi lac --decisions 300 --passes 5 --threads 1
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time

import numpy as np
import pandas as pd
import torch
from _report import header, write_page

from safer.cohorts import simulate_cohort, split_stays
from safer.decisions import calibrate, decide
from safer.models import make_model

GATES = {"spi": {"method": "spi", "delta": 0.05}, "lac": {"method": "lac", "alpha": 0.1}}


def decision_inputs(test: pd.DataFrame, n: int, seed: int) -> list[tuple[pd.DataFrame, np.ndarray]]:
    """``n`` single decisions on random test stays: each the stay's rows up to a random step
    (in step order) and the ``current`` mask marking only the last row."""
    rng = np.random.default_rng(seed)
    by_stay = {s: g.sort_values("step") for s, g in test.groupby("stay_id", sort=True)}
    stays = list(by_stay)
    out = []
    for _ in range(n):
        rows = by_stay[stays[rng.integers(len(stays))]]
        rows = rows.iloc[: rng.integers(1, len(rows) + 1)]
        current = np.zeros(len(rows), dtype=bool)
        current[-1] = True
        out.append((rows, current))
    return out


def time_decisions(model, gate, inputs, warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """Wall and CPU seconds of each ``decide`` call (the first ``warmup`` calls untimed)."""
    for rows, current in inputs[:warmup]:
        decide(model, gate, rows, current=current)
    wall, cpu = [], []
    for rows, current in inputs:
        w0, c0 = time.perf_counter(), time.process_time()
        decide(model, gate, rows, current=current)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return np.asarray(wall), np.asarray(cpu)


def profile(model, gate, inputs, lines: int = 30) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for rows, current in inputs:
        decide(model, gate, rows, current=current)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


def _model(variant: str, seed: int):
    if variant == "bc-mlp":
        return make_model("bc-mlp", seed=seed, use_notes=False)
    return make_model(variant, seed=seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stays", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="cohort, split and model seed")
    parser.add_argument("--variants", nargs="+", default=["bc-mlp", "safer"])
    parser.add_argument("--gates", nargs="+", default=list(GATES), choices=list(GATES))
    parser.add_argument("--decisions", type=int, default=300, help="timed decisions per gate")
    parser.add_argument("--warmup", type=int, default=20, help="untimed decisions first")
    parser.add_argument("--passes", type=int, default=5, help="timing passes over all pairs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--profile", action="store_true", help="print a cProfile (stdout)")
    parser.add_argument("--out", default="docs/benchmarks/decide_latency.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    cohort = simulate_cohort(n_stays=args.stays, seed=args.seed, progress=False)
    splits = split_stays(cohort, seed=args.seed)
    train, cal, test = (splits.subset(cohort, s) for s in ("train", "calibration", "test"))
    inputs = decision_inputs(test, args.decisions, args.seed)
    load_before = os.getloadavg()
    pairs, profiled = [], None
    for variant in args.variants:
        model = _model(variant, args.seed).fit(train, progress=False)
        if getattr(model.config, "use_notes", False):
            model.predict_proba(test)  # the test notes encoded once: timings with cached notes
        for name in args.gates:
            gate = calibrate(model, train, cal, seed=args.seed, **GATES[name])
            pairs.append((variant, name, model, gate))
            if args.profile and profiled is None:
                profiled = profile(model, gate, inputs)
                print(profiled)
    times = {(v, g): [] for v, g, _, _ in pairs}
    for k in range(args.passes):
        for variant, name, model, gate in pairs:
            wall, cpu = time_decisions(model, gate, inputs, args.warmup)
            times[variant, name].append((wall * 1e3, cpu * 1e3))
            print(f"pass {k + 1}: {variant} + {name}: median {np.median(cpu) * 1e3:.2f} ms CPU, "
                  f"{np.median(wall) * 1e3:.2f} ms wall", flush=True)  # fmt: skip
    load_after = os.getloadavg()

    lines = [
        header("One gated decision: latency", "torch", "pandas", "numpy"),
        f"Cohort `simulate_cohort({args.stays}, seed={args.seed})`, split by stay 60/20/20 "
        f"({len(splits.train)} train / {len(splits.calibration)} calibration / "
        f"{len(splits.test)} test stays). One decision = `decide(model, gate, rows, current=...)`"
        f" on a test stay's rows up to a random step, only the latest decided; "
        f"{args.decisions} decisions per row and pass (after {args.warmup} untimed), "
        f"{args.passes} passes, torch threads "
        f"{args.threads}. Load average (1 min) before / after: {load_before[0]:.2f} / "
        f"{load_after[0]:.2f}.",
        "",
        "| model | gate | CPU ms median | CPU ms p95 | passes' CPU medians | wall ms median | "
        "wall ms p95 |",
        "|---|---|---|---|---|---|---|",
    ]
    for (variant, name), runs in times.items():
        wall, cpu = (np.concatenate(parts) for parts in zip(*runs, strict=True))
        medians = [np.median(c) for _, c in runs]
        lines.append(
            f"| {variant} | {name} | {np.median(cpu):.2f} | {np.percentile(cpu, 95):.2f} | "
            f"{min(medians):.2f}-{max(medians):.2f} | {np.median(wall):.2f} | "
            f"{np.percentile(wall, 95):.2f} |"
        )
    note = (
        "CPU = `time.process_time()` of the process (all its threads), wall = "
        "`time.perf_counter()`; on a loaded machine the CPU figures are the ones to compare. "
        "`bc-mlp` reads no notes; `safer` reads them, its test notes encoded once before timing."
    )
    write_page(args.out, lines, note)


if __name__ == "__main__":
    main()
