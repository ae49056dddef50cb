"""The large run: a 100,000-stay simulated cohort through the CLI, stage by stage, with time and
peak memory per stage.

Writes docs/benchmarks/scale_large.md. Each stage is one ``safer`` command run as its own
process, so its wall time and peak resident memory (``os.wait4``'s ``ru_maxrss`` of that
process alone) are the stage's own:

1. ``safer cohort simulate --chunk-stays``: the cohort streamed to parquet;
2. ``safer train``: the plausibility model on the training split (default ``bc-mlp``, as in
   ``benchmarks/safe_gate.py``, so this row reads beside that page's 1,000 / 5,000 / 20,000 rows);
3. ``safer calibrate --method spi``: the safe gate (its decoder and candidate from the training
   split, its safety test on the calibration split);
4. ``safer mortality --policy gated:...``: the gated policy's true mortality by rollout.

The clinicians' exact mortality and the true-state oracle on the same training stays
(``safer.evaluation.ceiling``; evaluation only, it reads the hidden state) are the references.

``--device cuda`` trains the model on a GPU (``safer train --device``; SAFER's fusion model
with notes is then affordable at this size: its note encoder is the cost on a CPU).
``--gate-option KEY=VALUE`` (repeatable) passes a setting to the gate
(``safer calibrate --option``). ``--reuse`` keeps the stages whose output is already in
``--work`` (the cohort, the model) and their records from its ``stages.json``, so several gate
settings can share one simulation and one training: run the first setting, copy its
``cohort.parquet``, ``model/`` and ``stages.json`` into a new ``--work`` folder, and run the
next one there with ``--reuse``.

Time one small configuration first::

    PYTHONPATH=. python benchmarks/large_run.py --stays 2000 --episodes 500 \\
        --work /tmp/large --out /tmp/scale_large.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import header, write_page  # noqa: E402
from safer.cohorts import parse_fractions, read_cohort, split_stays  # noqa: E402
from safer.evaluation.ceiling import oracle_ceiling  # noqa: E402
from safer.evaluation.mortality import exact_mortality  # noqa: E402
from safer.evaluation.policies import clinician_policy  # noqa: E402


def run_stage(name: str, args: list[str], threads: int) -> dict:
    """Run ``python -m safer ARGS --json`` as its own process: its JSON, seconds and peak RSS."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    print(f"[{time.strftime('%H:%M:%S')}] {name}: safer {' '.join(args)}", flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "safer", *args, "--json"], env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"stage {name!r} failed with exit code {proc.returncode}")
    peak_gib = usage.ru_maxrss / 1024**2  # Linux reports KiB
    print(f"    {seconds:.0f} s, peak {peak_gib:.2f} GiB", flush=True)
    return {"stage": name, "seconds": seconds, "peak_gib": peak_gib, "result": json.loads(out)}


def _reusable(work: Path, outputs: dict[str, Path]) -> dict[str, dict]:
    """The earlier records (``work/stages.json``) of the stages whose output is in ``work``."""
    saved = work / "stages.json"
    present = [name for name, path in outputs.items() if path.exists()]
    if not present:
        return {}
    if not saved.is_file():
        raise SystemExit(f"--reuse: {saved} is missing, so the stages' records are unknown")
    records = {r["stage"]: {**r, "reused": True} for r in json.loads(saved.read_text())}
    missing = [name for name in present if name not in records]
    if missing:
        raise SystemExit(f"--reuse: {saved} has no record of {', '.join(missing)}")
    return {name: records[name] for name in present}


def _opts(**options) -> list[str]:
    """``--name value`` pairs (underscores become dashes)."""
    return [a for k, v in options.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stays", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0, help="Cohort seed (1000 + seed).")
    parser.add_argument("--chunk-stays", type=int, default=20_000)
    parser.add_argument("--variant", default="bc-mlp", help="Model behind the gate.")
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument(
        "--fractions", default="60/35/5",
        help="Train / calibration / test stay fractions (default: benchmarks/safe_gate.py's "
        "split, so the row reads beside that page's).",
    )  # fmt: skip
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--shard-size", type=int, default=5_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--device", default="cpu", help="Where `safer train` fits the model (cpu, cuda, ...)."
    )
    parser.add_argument("--work", type=Path, default=Path(".bench/large_run"))
    parser.add_argument(
        "--gate-option", action="append", default=[], metavar="KEY=VALUE",
        help="A gate setting, passed to `safer calibrate --option` (repeatable).",
    )  # fmt: skip
    parser.add_argument(
        "--reuse", action="store_true",
        help="Keep the stages whose output is already in --work (their records from its "
        "stages.json) instead of running them again.",
    )  # fmt: skip
    parser.add_argument("--note", default="", help="Text appended under the tables.")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/scale_large.md"))
    args = parser.parse_args()
    fractions = parse_fractions(args.fractions)
    args.fractions = "/".join(f"{100 * f:g}" for f in fractions)
    args.work.mkdir(parents=True, exist_ok=True)
    cohort, model, gate = args.work / "cohort.parquet", args.work / "model", args.work / "gate.json"
    seed = 1000 + args.seed
    start = time.perf_counter()
    commands = {
        "simulate": ["cohort", "simulate", *_opts(stays=args.stays, seed=seed,
                                                  chunk_stays=args.chunk_stays, out=cohort)],
        "train": ["train", *_opts(cohort=cohort, variant=args.variant, seed=args.seed, out=model,
                                  fractions=args.fractions, threads=args.threads,
                                  device=args.device)],
        "calibrate": ["calibrate", *_opts(model=model, cohort=cohort, method="spi",
                                          delta=args.delta, out=gate),
                      *[a for o in args.gate_option for a in ("--option", o)]],
        "mortality": ["mortality", *_opts(policy=f"gated:{model}:{gate}", episodes=args.episodes,
                                          seed=args.seed, shard_size=args.shard_size)],
    }  # fmt: skip
    done = _reusable(args.work, {"simulate": cohort, "train": model}) if args.reuse else {}
    stages = []
    for name, command in commands.items():  # the records saved after every stage, for --reuse
        stages.append(done[name] if name in done else run_stage(name, command, args.threads))
        (args.work / "stages.json").write_text(json.dumps(stages, indent=1, default=str))
    t0 = time.perf_counter()
    table = read_cohort(cohort)
    train_f, calibration_f, test_f = fractions
    train = split_stays(table, train=train_f, calibration=calibration_f, test=test_f,
                        seed=0).subset(table, "train")  # fmt: skip
    oracle = oracle_ceiling(train).mortality["one-step"]
    oracle_s = time.perf_counter() - t0
    minutes = (time.perf_counter() - start) / 60
    write_page(args.out, render(args, stages, oracle, oracle_s, minutes), args.note)


def render(args, stages, oracle, oracle_s, minutes) -> list[str]:
    by = {s["stage"]: s for s in stages}
    sim, cal, mort = by["simulate"]["result"], by["calibrate"]["result"], by["mortality"]["result"]
    clin = 100 * exact_mortality(clinician_policy())
    lines = [
        header("The large run: 100,000 simulated stays, stage by stage", "numpy", "torch"),
        f"Cohort: {sim['stays']:,} stays ({sim['rows']:,} decisions), seed {1000 + args.seed}, "
        f"streamed in {sim['chunks']} chunks of {args.chunk_stays:,} stays; split by stay "
        f"{args.fractions} (split seed 0). Model behind the gate: `{args.variant}` "
        f"(seed {args.seed}). "
        f"Gate: `spi`, delta {args.delta}, "
        + (
            f"options {', '.join(f'`{o}`' for o in args.gate_option)}, the rest"
            if args.gate_option
            else "the method's"
        )
        + " defaults. Every stage is one `safer` "
        f"command in its own process with {args.threads} thread(s); peak memory is that "
        f"process's peak resident set. The whole run took {minutes:.0f} min on the shared "
        "2-core machine (other work beside it"
        + ("; the reused stages not counted" if any(s.get("reused") for s in stages) else "")
        + ").\n",
        "## Stages\n",
        "| stage | command | wall s | peak RSS GiB |",
        "|---|---|---:|---:|",
    ]
    commands = {
        "simulate": "safer cohort simulate --chunk-stays",
        "train": f"safer train --variant {args.variant}",
        "calibrate": "safer calibrate --method spi",
        "mortality": f"safer mortality --policy gated:... --episodes {args.episodes}",
    }
    for s in stages:
        reused = " (reused: an earlier run's)" if s.get("reused") else ""
        lines.append(f"| {s['stage']} | `{commands[s['stage']]}`{reused} | {s['seconds']:.0f} | "
                     f"{s['peak_gib']:.2f} |")  # fmt: skip
    lines.append(f"| oracle (reference) | `oracle_ceiling` on the training stays | {oracle_s:.0f} "
                 "| – |")  # fmt: skip
    ci = f"{100 * mort['ci_low']:.1f}–{100 * mort['ci_high']:.1f}"
    rollout = mort.get("rollout") or {}
    acting = 100 * (1 - rollout.get("abstention_rate", 1.0)) if rollout else 0.0
    lines += [
        "", "## Result\n",
        "| decoded states | training decisions | deployed | gain, estimate (pts) | gain, lower "
        "bound (pts) | gated mortality % (95 % CI) | method | AI acting % (rollout) | "
        "clinicians % (exact) | oracle % |",
        "|---:|---:|---|---:|---:|---|---|---:|---:|---:|",
        f"| {cal['n_states']:,} | {cal['n_train_decisions']:,} | "
        f"{'yes' if cal['deployed'] else 'no'} | {100 * cal['gain_estimate']:+.2f} | "
        f"{100 * cal['gain_lower']:+.2f} | {100 * mort['mortality']:.2f} ({ci}) | "
        f"{mort['method']} | {acting:.0f} | {clin:.2f} | {100 * oracle:.1f} |",
        "",
        "Gain: the safety test's estimate of the survival gain over the clinicians on the "
        "calibration stays, and its lower bound at level delta (deploy only if > 0). A gate that "
        "deploys nowhere is the clinicians' policy, evaluated exactly. Oracle: tabular one-step "
        "improvement on the hidden states of the same training stays (exact; evaluation only).",
    ]  # fmt: skip
    return lines


if __name__ == "__main__":
    main()
