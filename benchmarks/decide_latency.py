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
SAFER's notes of the test stays are encoded once before timing, into a note cache of the run's
own (cached, as in a re-run).
``--new-notes`` adds, for a model that reads notes, the decision on a note never seen: before
each timed call the current row's note is replaced by a new one (each of its sentences tagged
with a new number, charted at the row's time), so the call pays the sentence encoder's pass
over it. ``--device`` fits the models there and encodes their notes there
(``fit(device=...)``, ``encode_notes_on``); the network scores on the CPU either way.

``--profile`` prints the cProfile of the decisions of the first model and gate (one more pass).

    PYTHONPATH=. python benchmarks/decide_latency.py --stays 1000 --variants bc-mlp safer \\
        --gates spi lac --decisions 300 --passes 5 --threads 1
    PYTHONPATH=. python benchmarks/decide_latency.py --variants safer --gates spi --new-notes \\
        --device cuda --out docs/benchmarks/decide_latency_gpu.md
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import os
import pstats
import tempfile
import time

import numpy as np
import pandas as pd
import torch
from _report import header, write_page

from safer.cohorts import simulate_cohort, split_stays
from safer.decisions import calibrate, decide
from safer.models import make_model
from safer.models.encoders import split_sentences

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


_NEW = itertools.count()  # numbers no note has carried yet


def with_new_note(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with the current (last) row's note replaced by one never seen: each of its
    sentences tagged with a new number, charted at the row's time."""
    rows = rows.copy()
    last, k = rows.index[-1], next(_NEW)
    text = rows.at[last, "note"]
    sentences = split_sentences(text) if isinstance(text, str) else []
    sentences = sentences or ["Reassessed at the bedside"]
    rows.at[last, "note"] = " ".join(f"{s.rstrip('.')} (entry {k}-{i})." for i, s in
                                     enumerate(sentences))  # fmt: skip
    rows.at[last, "note_time"] = rows.at[last, "charttime"]
    return rows


def time_decisions(model, gate, inputs, warmup: int, new_notes: bool = False):
    """Wall and CPU seconds of each ``decide`` call (the first ``warmup`` calls untimed); with
    ``new_notes`` each call's current note is one never seen (made before the clock starts)."""
    if new_notes:
        inputs = [(with_new_note(rows), current) for rows, current in inputs]
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


def _model(variant: str, seed: int, note_encoder: str | None, cache_dir: str):
    if variant == "bc-mlp":
        return make_model("bc-mlp", seed=seed, use_notes=False)
    encoder = {"note_encoder": note_encoder} if note_encoder else {}
    return make_model(variant, seed=seed, cache_dir=cache_dir, **encoder)


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
    parser.add_argument("--new-notes", action="store_true", help="add the never-seen-note arm")
    parser.add_argument("--device", default="cpu", help="fit and encode notes there")
    parser.add_argument("--note-encoder", default=None, help="local encoder folder for notes")
    parser.add_argument("--out", default="docs/benchmarks/decide_latency.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    cohort = simulate_cohort(n_stays=args.stays, seed=args.seed, progress=False)
    splits = split_stays(cohort, seed=args.seed)
    train, cal, test = (splits.subset(cohort, s) for s in ("train", "calibration", "test"))
    inputs = decision_inputs(test, args.decisions, args.seed)
    load_before = os.getloadavg()
    # a note cache of this run's own: a "new" note is new even where an earlier run cached one
    cache = tempfile.TemporaryDirectory(prefix="safer-latency-notes-")
    pairs, profiled = [], None
    for variant in args.variants:
        model = _model(variant, args.seed, args.note_encoder, cache.name)
        model.fit(train, progress=False, device=args.device)
        reads_notes = getattr(model.config, "use_notes", False)
        if reads_notes:
            model.encode_notes_on(args.device)
            model.predict_proba(test)  # the test notes encoded once: timings with cached notes
        for name in args.gates:
            gate = calibrate(model, train, cal, seed=args.seed, **GATES[name])
            for note in ("cached", "new") if reads_notes and args.new_notes else ("cached",):
                pairs.append((variant, name, "none" if not reads_notes else note, model, gate))
            if args.profile and profiled is None:
                profiled = profile(model, gate, inputs)
                print(profiled)
    times = {(v, g, n): [] for v, g, n, _, _ in pairs}
    for k in range(args.passes):
        for variant, name, note, model, gate in pairs:
            wall, cpu = time_decisions(model, gate, inputs, args.warmup, note == "new")
            times[variant, name, note].append((wall * 1e3, cpu * 1e3))
            print(f"pass {k + 1}: {variant} + {name}, {note} note: median "
                  f"{np.median(cpu) * 1e3:.2f} ms CPU, {np.median(wall) * 1e3:.2f} ms wall",
                  flush=True)  # fmt: skip
    load_after = os.getloadavg()

    gpu = f" ({torch.cuda.get_device_name(0)})" if args.device != "cpu" else ""
    lines = [
        header("One gated decision: latency", "torch", "pandas", "numpy"),
        f"Cohort `simulate_cohort({args.stays}, seed={args.seed})`, split by stay 60/20/20 "
        f"({len(splits.train)} train / {len(splits.calibration)} calibration / "
        f"{len(splits.test)} test stays). One decision = `decide(model, gate, rows, current=...)`"
        f" on a test stay's rows up to a random step, only the latest decided; "
        f"{args.decisions} decisions per row and pass (after {args.warmup} untimed), "
        f"{args.passes} passes, torch threads "
        f"{args.threads}; models fitted and notes encoded on `{args.device}`{gpu}. Load average "
        f"(1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f}.",
        "",
        "| model | gate | current note | CPU ms median | CPU ms p95 | passes' CPU medians "
        "| wall ms median | wall ms p95 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (variant, name, note), runs in times.items():
        wall, cpu = (np.concatenate(parts) for parts in zip(*runs, strict=True))
        medians = [np.median(c) for _, c in runs]
        lines.append(
            f"| {variant} | {name} | {note} | {np.median(cpu):.2f} | "
            f"{np.percentile(cpu, 95):.2f} | "
            f"{min(medians):.2f}-{max(medians):.2f} | {np.median(wall):.2f} | "
            f"{np.percentile(wall, 95):.2f} |"
        )
    note = (
        "CPU = `time.process_time()` of the process (all its threads), wall = "
        "`time.perf_counter()`; on a loaded machine the CPU figures are the ones to compare "
        "(on a GPU, wall: the CPU waits for the GPU). `bc-mlp` reads no notes; `safer` reads "
        "them, its test notes encoded once before timing (`cached`), or the current row's note "
        "one never seen (`new`, `--new-notes`)."
    )
    write_page(args.out, lines, note)


if __name__ == "__main__":
    main()
