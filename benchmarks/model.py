"""Benchmark the SAFER variants: metrics (mean +- sd over seeds), training time, memory, latency.

Writes ``docs/benchmarks/model.md``. Full size (the issue's targets)::

    python benchmarks/model.py --stays 5000 --seeds 3

Smoke size::

    python benchmarks/model.py --stays 600 --seeds 1
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import header, mean_sd  # noqa: E402
from safer.cohorts import simulate_cohort, split_stays  # noqa: E402
from safer.evaluation.experiments import train_and_evaluate  # noqa: E402
from safer.models import VARIANTS  # noqa: E402

METRICS = ("macro_auc", "micro_auc", "hr_at_3", "mrr_at_3", "accuracy", "ece", "log_loss")


def latency(model, test: pd.DataFrame, n: int, seed: int, new_note: bool) -> np.ndarray:
    """Seconds per decision: predict one decision from its stay's history so far."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(test), size=min(n, len(test)), replace=False)
    out = []
    for k, i in enumerate(rows):
        stay, step = test.loc[i, ["stay_id", "step"]]
        hist = test[(test["stay_id"] == stay) & (test["step"] <= step)].copy()
        if new_note:  # a note never seen before (2 new sentences), charted 10 min before
            last, u = hist.index[-1], uuid.uuid4().hex
            hist.loc[last, "note"] = f"MAP {60 + k % 30} ({u[:8]}), on levo. New event {u[8:]}."
            hist.loc[last, "note_time"] = hist.loc[last, "charttime"] - pd.Timedelta(minutes=10)
        start = time.perf_counter()
        model.predict_proba(hist)
        out.append(time.perf_counter() - start)
    return np.asarray(out)


def fmt(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    return mean_sd(values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stays", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--cohort-seed", type=int, default=0)
    parser.add_argument("--latency-decisions", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--cache-dir", default=None, help="note cache (default: user cache)")
    parser.add_argument("--out", default="docs/benchmarks/model.md")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    cohort = simulate_cohort(args.stays, args.cohort_seed, progress=True)
    splits = split_stays(cohort, seed=0)
    test = splits.subset(cohort, "test")
    rows = []
    for variant in args.variants:
        runs = []
        for seed in range(args.seeds):
            result = train_and_evaluate(
                cohort, splits, variant=variant, seed=seed, progress=True, cache_dir=args.cache_dir
            )
            cached = latency(result.model, test, args.latency_decisions, seed, new_note=False)
            latency(result.model, test, 1, seed + 999, new_note=True)  # load the encoder once
            fresh = latency(result.model, test, args.latency_decisions, seed, new_note=True)
            runs.append((result, cached, fresh, resource.getrusage(resource.RUSAGE_SELF)))
            s = result.metrics["survivors"]
            print(f"{variant} seed {seed}: macro-AUC {s['macro_auc']:.3f} "
                  f"fit {result.fit_seconds:.0f}s", file=sys.stderr)  # fmt: skip
        rows.append((variant, runs))

    lines = [
        header(f"SAFER variants on a {args.stays}-stay simulated cohort", "torch", "transformers"),
        f"Cohort `simulate_cohort({args.stays}, seed={args.cohort_seed})`, stay-level split "
        f"`split_stays(seed=0)`: {len(splits.train)} train / {len(splits.calibration)} calibration"
        f" / {len(splits.test)} test stays; metrics on the TEST split, mean ± sd over "
        f"{args.seeds} model seed(s); torch threads: {torch.get_num_threads()}.\n",
    ]
    for group in ("survivors", "all"):
        lines.append(f"\n## Test metrics, {group}\n")
        lines.append("| variant | " + " | ".join(METRICS) + " | n |")
        lines.append("|---" * (len(METRICS) + 2) + "|")
        for variant, runs in rows:
            cells = [fmt([r[0].metrics[group][m] for r in runs]) for m in METRICS]
            lines.append(
                f"| {variant} | " + " | ".join(cells) + f" | {runs[0][0].metrics[group]['n']} |"
            )
    lines.append("\n## Cost\n")
    lines.append(
        "| variant | fit seconds (incl. note encoding) | peak RSS so far (MiB) | p50 / p95 ms per "
        "decision, cached notes | p50 / p95 ms, with a new note |"
    )
    lines.append("|---|---|---|---|---|")
    for variant, runs in rows:
        cached = np.concatenate([r[1] for r in runs]) * 1000
        fresh = np.concatenate([r[2] for r in runs]) * 1000
        rss = max(r[3].ru_maxrss for r in runs) / 1024
        lines.append(
            f"| {variant} | {fmt([r[0].fit_seconds for r in runs])} | {rss:.0f} | "
            f"{np.percentile(cached, 50):.1f} / {np.percentile(cached, 95):.1f} | "
            f"{np.percentile(fresh, 50):.1f} / {np.percentile(fresh, 95):.1f} |"
        )
    lines.append(
        "\nFit time includes encoding the note sentences not yet in the on-disk cache (none "
        "when the cache is warm, as in a re-run). Peak RSS is the process maximum up to that "
        "variant (ru_maxrss), not per run. Latency: `predict_proba` on one stay's history up to "
        "one decision, one decision at a time."
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
