"""Data-parallel training: ``torchrun --nproc-per-node 2`` against one process, same cohort.

Trains the same variant with the same seeds twice per seed — ``python -m safer train`` (one
process) and ``torchrun --standalone --nproc-per-node 2 -m safer train`` (two ranks, gloo, one
torch thread each) — in the same run on the same simulated cohort, then scores both on the
test split. Reports the stage-1 throughput (training decisions per second of epoch time, which
is what data parallelism splits), the whole fit time (it also holds the replicated data
preparation, stage 2 and validation), and test macro-AUC; then rolls the first model out in
shards in one and in two processes (same numbers expected, timed). Writes
``docs/benchmarks/scale.md``::

    python benchmarks/scale.py --stays 1000 --seeds 3 --rollout-episodes 1000 --ray-stays 300

With ``--ray-stays N`` it also times ``safer benchmark`` serially and on a local 2-worker Ray
cluster (``--ray-models``, seeds 0..K-1 for each K of ``--ray-seeds``: one comparison each);
``--only ray`` runs that comparison alone (page ``docs/benchmarks/scale_ray.md``), and
``--quiet-load L`` waits (60 s steps, up to ``--quiet-wait`` minutes, default 25) for a 1-minute
load average below ``L`` before each timed run::

    python benchmarks/scale.py --only ray --ray-stays 3000 --ray-seeds 2 3 --quiet-load 0.8

``--rollout-ray`` adds a third arm to the sharded rollouts: the shards as Ray tasks on a local
2-worker cluster (started inside the timed run). ``--only rollouts`` trains the seed-0 model in
one process and times its rollouts alone (page ``docs/benchmarks/scale_rollouts.md``)::

    python benchmarks/scale.py --only rollouts --stays 1000 --rollout-episodes 20000 \
        --rollout-ray --quiet-load 0.8
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import header, write_page  # noqa: E402
from safer.cohorts import simulate_cohort, split_stays  # noqa: E402
from safer.evaluation.experiments import score_split  # noqa: E402
from safer.evaluation.mortality import rollout_mortality  # noqa: E402
from safer.evaluation.policies import ModelPolicy  # noqa: E402
from safer.models import load_model  # noqa: E402


def train(
    procs: int, cohort: Path, variant: str, seed: int, out: Path, batch_size: int | None = None
) -> dict:
    """One ``safer train`` run in ``procs`` processes; its JSON summary."""
    args = [
        "-m", "safer", "train", "--cohort", str(cohort), "--variant", variant, "--seed",
        str(seed), "--threads", "1", "--out", str(out), "--json",
    ]  # fmt: skip
    if batch_size is not None:
        args += ["--batch-size", str(batch_size)]
    if procs == 1:
        command = [sys.executable, *args]
    else:
        torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
        command = [torchrun, "--standalone", "--nproc-per-node", str(procs), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def sharded_seconds(model) -> float:
    """Epoch seconds of the stages whose batches are sharded across ranks (1 and 3)."""
    return sum(
        e["seconds"]
        for stage in ("base", "finetune")
        for e in model.history_.get(stage, {}).get("epochs", [])
    )


def stage_throughput(model, n_train: int) -> tuple[float, float, int]:
    """Training-split decisions per second of stage-1 epoch time (the validation part included
    in the count: a fixed scale, the same for both runs), mean seconds per epoch, epochs run."""
    epochs = model.history_["base"]["epochs"]
    seconds = float(np.mean([e["seconds"] for e in epochs]))
    return n_train / seconds, seconds, len(epochs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stays", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--variant", default="safer-n")
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument(
        "--batch-size", type=int, default=None,
        help="Global training batch of every fit (`safer train --batch-size`; default 256).",
    )  # fmt: skip
    parser.add_argument(
        "--rollout-episodes", type=int, default=1000,
        help="Episodes of the sharded-rollout comparison (0: skip it).",
    )  # fmt: skip
    parser.add_argument(
        "--ray-stays", type=int, default=0,
        help="Stays of the serial-vs-Ray `safer benchmark` comparison (0: skip it).",
    )  # fmt: skip
    parser.add_argument(
        "--ray-seeds", type=int, nargs="+", default=[2],
        help="Seeds of the Ray comparison: K runs seeds 0..K-1; several values, one comparison "
        "each.",
    )  # fmt: skip
    parser.add_argument(
        "--ray-models", nargs="+", default=["safer-n", "bc-mlp"],
        help="Models of the Ray comparison (the first one also compares the gates).",
    )  # fmt: skip
    parser.add_argument(
        "--rollout-ray", action="store_true",
        help="Also roll out with the shards as Ray tasks (a local 2-worker cluster).",
    )  # fmt: skip
    parser.add_argument(
        "--only", choices=["ray", "rollouts"],
        help="Run only this part (ray: the serial-vs-Ray comparison, needs --ray-stays; "
        "rollouts: the sharded rollouts of the seed-0 model).",
    )  # fmt: skip
    parser.add_argument(
        "--quiet-load", type=float, default=0.0,
        help="Before each timed Ray-comparison run, wait (60 s steps, up to --quiet-wait) until "
        "the 1-minute load average is below this (0: do not wait).",
    )  # fmt: skip
    parser.add_argument(
        "--quiet-wait", type=float, default=25.0,
        help="Longest wait for --quiet-load before each timed run, in minutes (then it runs "
        "anyway and the page records the load).",
    )  # fmt: skip
    parser.add_argument(
        "--out", help="Page to write (default docs/benchmarks/scale.md; with --only ray "
        "docs/benchmarks/scale_ray.md).",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.only == "ray":
        if not args.ray_stays:
            parser.error("--only ray needs --ray-stays N")
        lines = [header(f"`safer benchmark`: serial and on Ray, {args.ray_stays} stays", "ray")]
        for k in args.ray_seeds:
            lines += ray_part(args.ray_stays, k, args.ray_models, args)
        write_page(args.out or "docs/benchmarks/scale_ray.md", lines)
        return
    if args.only == "rollouts":
        if not args.rollout_episodes:
            parser.error("--only rollouts needs --rollout-episodes N > 0")
        cohort = simulate_cohort(args.stays, seed=0, progress=False)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "cohort.parquet"
            cohort.to_parquet(path)
            train(1, path, args.variant, 0, Path(tmp) / "m0-1")
            policy = ModelPolicy(load_model(Path(tmp) / "m0-1"), name=args.variant)
            title = f"Sharded rollouts of a `{args.variant}` policy ({args.stays}-stay cohort)"
            lines = [header(title, "torch", "ray"), *rollout_part(policy, args)]
        write_page(args.out or "docs/benchmarks/scale_rollouts.md", lines)
        return

    cohort = simulate_cohort(args.stays, seed=0, progress=False)
    splits = split_stays(cohort, seed=0)
    train_part = splits.subset(cohort, "train")
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cohort.parquet"
        cohort.to_parquet(path)
        for seed in range(args.seeds):
            for procs in (1, args.procs):
                out = Path(tmp) / f"m{seed}-{procs}"
                summary = train(procs, path, args.variant, seed, out, args.batch_size)
                model = load_model(summary["model"])
                auc = score_split(model, cohort, splits, "test")
                rate, per_epoch, n_epochs = stage_throughput(model, len(train_part))
                rows.append(
                    dict(
                        load=os.getloadavg()[0],
                        seed=seed, procs=procs, world=model.world_size_, fit=summary["fit_seconds"],
                        rate=rate, per_epoch=per_epoch, epochs=n_epochs,
                        auc_s=auc["survivors"]["macro_auc"], auc_a=auc["all"]["macro_auc"],
                        sharded=sharded_seconds(model),
                    )
                )  # fmt: skip
                print(rows[-1], file=sys.stderr)
        rollout_lines = []
        if args.rollout_episodes:  # the first one-process model
            policy = ModelPolicy(load_model(Path(tmp) / "m0-1"), name=args.variant)
            rollout_lines = rollout_part(policy, args)

    def mean(procs: int, key: str) -> float:
        return float(np.mean([r[key] for r in rows if r["procs"] == procs]))

    config = "default config" if args.batch_size is None else f"global batch {args.batch_size}"
    bs = "" if args.batch_size is None else f" --batch-size {args.batch_size}"
    lines = [
        header(f"Data-parallel training (torchrun) on a {args.stays}-stay cohort", "torch"),
        f"Variant `{args.variant}` ({config}), cohort `simulate_cohort({args.stays}, "
        f"seed=0)`, split `split_stays(seed=0)`: {len(splits.train)} train stays "
        f"({len(train_part)} decisions). One process: `python -m safer train --threads 1{bs}`; "
        f"{args.procs} processes: `torchrun --standalone --nproc-per-node {args.procs} -m safer "
        f"train --threads 1{bs}` (gloo, one torch thread per rank). Both in this run, seeds "
        f"0..{args.seeds - 1}; test-split macro-AUC.\n",
        f"The machine has {os.cpu_count()} cores shared with other users' jobs: the 1-minute "
        f"load average was {load_before[0]:.1f} before the runs (column `load`: after each "
        "run). With a load above the core count the ranks do not each get a core of their "
        "own, and the throughput ratio measures that contention as much as the method.\n",
        "Columns: `sharded s` = epoch seconds of stages 1 and 3 (batches split across the "
        "ranks); `replicated s` = fit seconds minus those (reading the cohort's windows and "
        "tensors, validation, stage 2 and the kappa pass: every rank does them whole).\n",
        "| seed | processes | world_size saved | stage-1 epochs | s per stage-1 epoch | "
        "stage-1 decisions/s | fit seconds | sharded s | replicated s | macro-AUC survivors "
        "| macro-AUC all | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['procs']} | {r['world']} | {r['epochs']} | {r['per_epoch']:.2f} "
            f"| {r['rate']:.0f} | {r['fit']:.1f} | {r['sharded']:.1f} "
            f"| {r['fit'] - r['sharded']:.1f} | {r['auc_s']:.3f} | {r['auc_a']:.3f} "
            f"| {r['load']:.1f} |"
        )
    p = args.procs
    lines += [
        "",
        f"- stage-1 throughput ratio, {p} processes / 1: "
        f"**{mean(1, 'per_epoch') / mean(p, 'per_epoch'):.2f}x** (mean seconds per epoch)",
        f"- whole-fit time ratio: {mean(1, 'fit') / mean(p, 'fit'):.2f}x; sharded stages "
        f"{mean(1, 'sharded') / mean(p, 'sharded'):.2f}x",
        f"- macro-AUC (survivors), mean over seeds: 1 process {mean(1, 'auc_s'):.3f}, "
        f"{p} processes {mean(p, 'auc_s'):.3f}",
    ]
    ratio = mean(1, "per_epoch") / mean(p, "per_epoch")
    if ratio > p:  # data parallelism alone cannot beat the process count
        lines.append(
            f"- the ratio exceeds {p}, which splitting the work {p} ways cannot give: with the "
            "machine overloaded, each process gets a share of the cores, and "
            f"{p} processes get {p} shares. It measures the scheduler, not the method; a fair "
            "ratio needs a machine where each rank has a core to itself."
        )
    lines += rollout_lines
    if args.ray_stays:
        for k in args.ray_seeds:
            lines += ray_part(args.ray_stays, k, args.ray_models, args)
    write_page(args.out or "docs/benchmarks/scale.md", lines)


def wait_for_quiet(below: float, minutes: float, step: int = 60) -> tuple[float, float]:
    """Wait until the 1-minute load average is below ``below`` (``step`` s at a time, at most
    ``minutes``); the load at the end, whatever it is then, and the minutes waited."""
    waited = 0
    while below and os.getloadavg()[0] >= below and waited < 60 * minutes:
        print(f"load {os.getloadavg()[0]:.2f} >= {below}: waiting {step} s", file=sys.stderr)
        time.sleep(step)
        waited += step
    return os.getloadavg()[0], waited / 60


def rollout_part(policy, args) -> list[str]:
    """The policy rolled out in shards (a quarter of ``--rollout-episodes`` each) in one and in
    two processes, and with ``--rollout-ray`` as Ray tasks on a local 2-worker cluster started
    in the timed run (its shutdown not timed); the page's lines."""
    from safer._learnable import torch_threads

    episodes, shard = args.rollout_episodes, max(args.rollout_episodes // 4, 1)
    arms = [("1 process", {"jobs": 1}), ("2 processes", {"jobs": 2})]
    if args.rollout_ray:
        arms.append(("Ray, 2 workers", {"ray": "auto"}))
    runs = []
    for name, how in arms:
        before, waited = wait_for_quiet(args.quiet_load, args.quiet_wait)
        start = time.perf_counter()
        if "ray" in how:
            import ray

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        with torch_threads(1):  # the one-process arm gets one core, as each worker does
            roll = rollout_mortality(
                policy, episodes, seed=0, shard_size=shard, progress=False, **how
            )
        runs.append((name, roll, time.perf_counter() - start, waited, before, os.getloadavg()[0]))
        if "ray" in how:
            ray.shutdown()
        print(name, roll, file=sys.stderr)
    one = runs[0][1]
    same = all((r.deaths, r.decisions) == (one.deaths, one.decisions) for _, r, *_ in runs)
    lines = [
        "",
        "## Sharded rollouts\n",
        f"`rollout_mortality(ModelPolicy(model), {episodes}, seed=0, shard_size={shard}, ...)` of "
        "the seed-0 one-process model (the policy acts on EHR-like rows), in this run: "
        "`jobs=1`, `jobs=2` (process start-up and the policy's copy to each process timed)"
        + (
            ', and `ray="auto"` on a local cluster of 2 workers (`ray.init(num_cpus=2)` '
            "inside the timed run; the policy put once in the object store)"
            if args.rollout_ray
            else ""
        )
        + ".\n",
        "| how | mortality % | deaths | decisions | seconds | waited for a quiet machine (min) "
        "| load before | load after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, roll, seconds, waited, before, after in runs:
        lines.append(
            f"| {name} | {100 * roll.mortality:.1f} | {roll.deaths} | {roll.decisions} | "
            f"{seconds:.1f} | {waited:.0f} | {before:.2f} | {after:.2f} |"
        )
    base = runs[0][2]
    lines += [
        "",
        f"- identical results: **{'yes' if same else 'NO'}**; wall time against one process: "
        + ", ".join(f"{name} {seconds / base:.2f}" for name, _, seconds, *_ in runs[1:]),
    ]
    return lines


def ray_part(stays: int, n_seeds: int, models: list[str], args) -> list[str]:
    """`safer benchmark` serially and on a local Ray cluster (2 workers), same settings; the
    Ray cluster is started inside the timed run and shut down after it."""
    from safer._learnable import torch_threads
    from safer.evaluation.benchmark import _task_cost, run_benchmark

    settings = dict(
        stays=stays, seeds=list(range(n_seeds)), models=list(models), episodes=200,
        gates=["lac"], gate_models=models[:1], progress=False,
    )  # fmt: skip
    timed = {}
    for how in (None, "local"):
        before, waited = wait_for_quiet(args.quiet_load, args.quiet_wait)
        start = time.perf_counter()
        with torch_threads(1):
            result = run_benchmark(ray=how, **settings)
        timed[how] = (time.perf_counter() - start, result, waited, before, os.getloadavg()[0])
        print(how, timed[how][0], file=sys.stderr)
        if how is not None:
            import ray

            ray.shutdown()  # the next comparison starts its own cluster, timed
    (serial_s, serial, *loads0), (ray_s, on_ray, *loads1) = timed[None], timed["local"]
    same = (
        serial.runs.drop(columns="fit_seconds").equals(on_ray.runs.drop(columns="fit_seconds"))
        and serial.gate_runs.equals(on_ray.gate_runs)
        and serial.references == on_ray.references
    )
    shown = {k: v for k, v in settings.items() if k != "progress"}
    tasks = [(m, s) for m in models for s in range(n_seeds)]
    cost = _task_cost(settings["gates"], tuple(settings["gate_models"]))
    order = sorted(tasks, key=lambda t: -cost(t))
    fits = serial.runs.groupby("model", sort=False)["fit_seconds"].mean()
    return [
        "",
        f"## `safer benchmark`: serial and on Ray, {len(models)} models x {n_seeds} seeds\n",
        f'`run_benchmark(**{shown})` serially (one torch thread) and with `ray="local"` (a '
        "Ray cluster started in the run, one worker per core: 2 here; its start-up counted, "
        f"its shutdown not): {len(tasks)} tasks, one per (model, seed), and one for the "
        "reference rows (the exact clinicians' and optimal mortality, the oracle ceiling), "
        "submitted longest first: "
        + ", ".join(f"{m} {s}" for m, s in order)
        + ", references. Ray starts while a thread of the driver simulates the cohort, and "
        "its workers import the models before the tasks exist.\n",
        "| path | wall seconds | waited for a quiet machine (min) | load before | load after |",
        "|---|---|---|---|---|",
        f"| serial | {serial_s:.1f} | {loads0[0]:.0f} | {loads0[1]:.2f} | {loads0[2]:.2f} |",
        f"| Ray, 2 workers | {ray_s:.1f} | {loads1[0]:.0f} | {loads1[1]:.2f} | {loads1[2]:.2f} |",
        "",
        f"- same table (training times aside) and the same reference floats: "
        f"**{'yes' if same else 'NO'}**; Ray / serial wall time **{ray_s / serial_s:.2f}**",
        "- mean training seconds per task, serial run: "
        + ", ".join(f"{m} {v:.1f}" for m, v in fits.items()),
    ]


if __name__ == "__main__":
    main()
