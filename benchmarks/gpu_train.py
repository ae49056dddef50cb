"""Training on a GPU against the CPU: ``fit(device=...)`` of the same models on the same stays.

Writes docs/benchmarks/gpu_train.md. One simulated cohort (``--stays``, seed 0), split 60/20/20
by stay (``split_stays(seed=0)``); each run (``--runs``, ``VARIANT@DEVICE`` or
``VARIANT@DEVICE@BATCH``) fits the variant with model seed 0 on the training stays, in this
process, on that device (a CPU run with ``--threads`` torch threads), and reports the fit's wall
time, its stage-1 epochs and seconds per epoch, training decisions per second of stage-1 epoch
time, and the test split's macro-AUC. A variant that reads notes encodes them in the fit, into a
fresh note cache (cold: the encoding time is in the fit's). Each finished run is appended to
``--jsonl`` as it ends, so a run cut short keeps what it measured.

    PYTHONPATH=. python benchmarks/gpu_train.py --stays 20000 --threads 16 \\
        --runs safer-n@cuda bc-mlp@cuda safer-n@cuda@2048 safer@cuda safer-n@cpu bc-mlp@cpu
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import header, write_page  # noqa: E402
from safer._learnable import torch_threads  # noqa: E402
from safer.cohorts import simulate_cohort, split_stays  # noqa: E402
from safer.evaluation.experiments import score_split  # noqa: E402
from safer.models import make_model  # noqa: E402


def parse_run(text: str) -> tuple[str, str, int | None]:
    """``VARIANT@DEVICE[@BATCH]`` -> (variant, device, batch size or None for the default)."""
    parts = text.split("@")
    if len(parts) not in (2, 3):
        raise SystemExit(f"--runs: {text!r} is not VARIANT@DEVICE or VARIANT@DEVICE@BATCH")
    return parts[0], parts[1], int(parts[2]) if len(parts) == 3 else None


def one_run(table, splits, text: str, args) -> dict:
    variant, device, batch = parse_run(text)
    overrides = {"seed": 0}
    if batch is not None:
        overrides["batch_size"] = batch
    if args.note_encoder:
        overrides["note_encoder"] = args.note_encoder
    with tempfile.TemporaryDirectory() as cache:
        model = make_model(variant, cache_dir=cache, **overrides)
        train = splits.subset(table, "train")
        threads = args.threads if device == "cpu" else 1
        with torch_threads(threads):
            start = time.perf_counter()
            model.fit(train, progress=False, device=device, split_seed=0)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            auc = score_split(model, table, splits, "test")
    epochs = (model.history_.get("base") or model.history_["train"])["epochs"]  # SAFER, baselines
    per_epoch = float(np.mean([e["seconds"] for e in epochs]))
    return {
        "run": text, "variant": variant, "device": device, "threads": threads,
        "batch_size": model.config.batch_size, "train_stays": int(train["stay_id"].nunique()),
        "train_decisions": len(train), "fit_seconds": round(seconds, 1),
        "stage1_epochs": len(epochs), "s_per_epoch": round(per_epoch, 2),
        "decisions_per_s": round(len(train) / per_epoch),
        "auc_survivors": round(auc["survivors"]["macro_auc"], 3),
        "auc_all": round(auc["all"]["macro_auc"], 3),
    }  # fmt: skip


def render(args, rows: list[dict], gpu: str) -> list[str]:
    lines = [
        header(f"Training on a GPU and on the CPU, {args.stays}-stay cohort", "torch"),
        "",
        f"GPU: {gpu}. Cohort `simulate_cohort({args.stays}, seed=0)`, split "
        "`split_stays(seed=0)` (60/20/20 by stay); each row fits the variant (model seed 0) "
        "on the training stays in one process with `fit(device=...)` (`safer train --device`)"
        f"; CPU rows with {args.threads} torch thread(s). `fit s`: wall time of the whole fit "
        "(stages 1-3, validation, and for `safer` the encoding of every note into a cold "
        "cache); `s/epoch` and `decisions/s`: SAFER's stage 1, a baseline's one stage "
        "(training decisions over mean epoch seconds); macro-AUC on the test split.",
        "",
        "| run | device | batch | train decisions | fit s | stage-1 epochs | s/epoch "
        "| decisions/s | macro-AUC survivors | macro-AUC all |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        where = r["device"] if r["device"] != "cpu" else f"cpu ({r['threads']} thr.)"
        lines.append(
            f"| `{r['run']}` | {where} | {r['batch_size']} | {r['train_decisions']} "
            f"| {r['fit_seconds']} | {r['stage1_epochs']} | {r['s_per_epoch']} "
            f"| {r['decisions_per_s']} | {r['auc_survivors']} | {r['auc_all']} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stays", type=int, default=20_000)
    parser.add_argument("--runs", nargs="+", default=["safer-n@cuda", "safer-n@cpu"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--note-encoder", default=None, help="Local encoder folder for notes.")
    parser.add_argument("--jsonl", type=Path, default=None, help="Append each run's row here.")
    parser.add_argument("--note", default="", help="Text appended under the table.")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/gpu_train.md"))
    args = parser.parse_args(argv)
    for run in args.runs:
        parse_run(run)  # every run named well before any work
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    table = simulate_cohort(n_stays=args.stays, seed=0, progress=False)
    splits = split_stays(table, seed=0)
    rows = []
    for run in args.runs:
        rows.append(one_run(table, splits, run, args))
        print(json.dumps(rows[-1]), flush=True)
        if args.jsonl:
            with args.jsonl.open("a") as f:
                f.write(json.dumps(rows[-1]) + "\n")
    write_page(args.out, render(args, rows, gpu), args.note)


if __name__ == "__main__":
    main()
