"""Where a data-parallel training step's time goes: one process against two gloo ranks.

Writes docs/benchmarks/ddp_profile.md. The same variant (default ``safer-n``) is fitted on the
same simulated training stays in one process and in two ranks (``torch.multiprocessing``,
gloo over a file rendezvous, one torch thread per process: what ``torchrun`` sets up), at each
global batch size of ``--batches`` (the two ranks split every global batch). Per configuration:

- a plain fit: seconds per stage-1 epoch (the throughput ``benchmarks/scale.py`` reports);
- a fit under ``cProfile``: the summed time of the backward passes, of the gradient averaging
  (:func:`safer._distributed.average_gradients`: the all-reduce, including the wait for the
  slower rank), of the optimiser steps, and the rest of the training epochs (forward pass,
  batching, Python), each divided by the number of steps, over every stage's epochs;
- with two ranks, the gloo all-reduce alone: one float64 buffer the size of the model's
  parameters, 300 times back to back, median milliseconds.

The profiler slows Python-heavy parts more than torch's kernels, so read the breakdown as
shares; the plain fit gives the seconds. Run it on a quiet machine::

    python benchmarks/ddp_profile.py --stays 5000 --batches 256 512
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy and torch start their pools

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import header, write_page  # noqa: E402
from safer import _distributed  # noqa: E402
from safer.cohorts import simulate_cohort, split_stays  # noqa: E402
from safer.models import make_model  # noqa: E402

#: The profiled parts: (label, file suffix, function name); each part's cumulative time.
PARTS = (
    ("backward", "torch/autograd/graph.py", "_engine_run_backward"),
    ("gradient all-reduce", "safer/_distributed.py", "average_gradients"),
    ("optimiser", "torch/optim/optimizer.py", "wrapper"),  # Optimizer.step's wrapper
)


def _part_seconds(stats: pstats.Stats) -> tuple[dict[str, float], int]:
    """Seconds of each of :data:`PARTS` and the number of optimiser steps."""
    out, steps = dict.fromkeys((p[0] for p in PARTS), 0.0), 0
    for (path, _line, name), (_cc, calls, _own, cumulative, _callers) in stats.stats.items():
        for label, suffix, function in PARTS:
            if name == function and path.endswith(suffix):
                out[label] += cumulative
                if label == "optimiser":
                    steps += calls
    return out, steps


def _allreduce_ms(n: int, repeats: int = 300) -> float:
    buffer = torch.zeros(n, dtype=torch.float64)
    for _ in range(20):
        torch.distributed.all_reduce(buffer)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.distributed.all_reduce(buffer)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def _rank(rank: int, size: int, init: str, cohort: str, variant: str, batch: int, out: str):
    """One process of one configuration: a plain fit, a profiled fit, the all-reduce alone."""
    torch.set_num_threads(1)
    if size > 1:
        torch.distributed.init_process_group(
            "gloo", init_method=f"file://{init}", rank=rank, world_size=size
        )
    try:
        train = pd.read_parquet(cohort)
        plain = make_model(variant, seed=0, batch_size=batch).fit(train, progress=False)
        base = plain.history_["base"]["epochs"]
        profile = cProfile.Profile()
        profile.enable()
        profiled = make_model(variant, seed=0, batch_size=batch).fit(train, progress=False)
        profile.disable()
        parts, steps = _part_seconds(pstats.Stats(profile))
        epochs = sum(
            e["seconds"] for stage in profiled.history_.values() if isinstance(stage, dict)
            for e in stage.get("epochs", [])
        )  # fmt: skip
        n_params = sum(p.numel() for p in plain.net_.parameters())
        record = dict(
            epoch_s=float(np.mean([e["seconds"] for e in base])), epochs=len(base),
            steps=steps, parts=parts, rest=epochs - sum(parts.values()), params=n_params,
            allreduce_ms=_allreduce_ms(n_params) if size > 1 else None,
        )  # fmt: skip
        Path(out, f"rank{rank}.json").write_text(json.dumps(record))
    finally:
        _distributed.shutdown()


def measure(procs: int, cohort: Path, variant: str, batch: int, tmp: Path) -> dict:
    """Rank 0's record of one configuration (its ranks spawned and joined here)."""
    run = tmp / f"p{procs}-b{batch}"
    run.mkdir()
    args = (procs, str(run / "init"), str(cohort), variant, batch, str(run))
    if procs == 1:
        _rank(0, *args)
    else:
        mp.spawn(_rank, args=args, nprocs=procs, join=True)
    return json.loads((run / "rank0.json").read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stays", type=int, default=5000)
    parser.add_argument("--variant", default="safer-n")
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--out", default="docs/benchmarks/ddp_profile.md")
    args = parser.parse_args(argv)
    cohort = simulate_cohort(args.stays, seed=0, progress=False)
    train = split_stays(cohort, seed=0).subset(cohort, "train")
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.parquet"
        train.to_parquet(path)
        for batch in args.batches:
            for procs in (1, args.procs):
                rows.append((procs, batch, measure(procs, path, args.variant, batch, Path(tmp))))
                print(rows[-1], file=sys.stderr)
    write_page(args.out, render(args, rows, train, load_before))


def render(args, rows, train: pd.DataFrame, load_before: float) -> list[str]:
    one = {batch: r for procs, batch, r in rows if procs == 1}
    lines = [
        header("Where a data-parallel training step's time goes", "torch"),
        f"Variant `{args.variant}`, its {rows[0][2]['params']:,} parameters; training stays of "
        f"`simulate_cohort({args.stays}, seed=0)` split by `split_stays(seed=0)` "
        f"({train['stay_id'].nunique():,} stays, {len(train):,} decisions), fitted with seed "
        f"0. One process against {args.procs} gloo ranks (one torch thread each; the ranks "
        "split every global batch, so each two-rank step is the one-process step over the same "
        "batch; early stopping may end a stage at another epoch, hence the step counts). "
        "1-minute load "
        f"average before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}.\n",
        "Per step (rank 0, under cProfile, every stage's training epochs): `backward` the "
        "backward passes, `all-reduce` the gradient averaging (the gloo all-reduce and the "
        "wait for the slower rank), `optimiser` AdamW's step, `rest` the remainder of the "
        "epochs (the forward pass, batching, Python). `s / stage-1 epoch` is from a fit "
        "without the profiler; the ratio is one process's over this row's.\n",
        "| processes | global batch | s / stage-1 epoch | ratio | steps | rest ms | backward ms "
        "| all-reduce ms | optimiser ms | all-reduce alone ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for procs, batch, r in rows:
        per = {k: 1000 * v / max(r["steps"], 1) for k, v in r["parts"].items()}
        alone = "" if r["allreduce_ms"] is None else f"{r['allreduce_ms']:.2f}"
        ratio = one[batch]["epoch_s"] / r["epoch_s"]
        lines.append(
            f"| {procs} | {batch} | {r['epoch_s']:.2f} | {ratio:.2f}x "
            f"| {r['steps']} | {1000 * r['rest'] / max(r['steps'], 1):.2f} | {per['backward']:.2f} "
            f"| {per['gradient all-reduce']:.2f} | {per['optimiser']:.2f} | {alone} |"
        )  # fmt: skip
    lines += [
        "",
        "`all-reduce alone`: one float64 buffer of the model's parameter count all-reduced "
        "300 times back to back by the idle ranks (median): the latency of gloo on this "
        "machine, paid once per step whatever the batch.",
    ]
    return lines


if __name__ == "__main__":
    main()
