"""``safer train`` and ``safer evaluate``: fit a recommender on the train split, score a split."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from safer.cli._common import err_console, print_json, print_table
from safer.errors import SaferError
from safer.models import MODEL_NAMES  # the --variant help lists them

_VARIANT_HELP = "Model: a SAFER variant or a baseline: " + ", ".join(MODEL_NAMES) + "."


def train(
    cohort: Path = typer.Option(..., "--cohort", help="Cohort file (.parquet or .csv)."),
    variant: str = typer.Option("safer", "--variant", help=_VARIANT_HELP),
    seed: int = typer.Option(0, "--seed", help="Model seed (same seed, same model)."),
    out: Path = typer.Option(..., "--out", help="Folder to save the model in."),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the stay-level split."),
    fractions: str = typer.Option(
        "60/20/20",
        "--fractions",
        help=(
            "Stay fractions of the train / calibration / test splits (saved with the model; "
            "calibrate and evaluate reuse them). The spi gate's safety test gains from a larger "
            "calibration share, e.g. 60/35/5 (docs/conformal.md)."
        ),
    ),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Stage-1 epochs (max)."),
    finetune_epochs: int | None = typer.Option(
        None, "--finetune-epochs", min=1, help="Stage-3 epochs (max)."
    ),
    d_model: int | None = typer.Option(None, "--d-model", min=4, help="Width of the model."),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        min=1,
        help="Decisions per training batch (default 256). Larger batches keep a GPU busy and "
        "make data-parallel steps cheaper (docs/scaling.md).",
    ),
    note_encoder: str | None = typer.Option(
        None, "--note-encoder", help="Local Hugging Face encoder folder (default all-MiniLM-L6-v2)."
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="CPU threads for PyTorch (1 is fastest on a busy machine)."
    ),
    device: str = typer.Option(
        "cpu",
        "--device",
        help="Where to train: cpu, cuda (under torchrun each rank's own GPU), cuda:N, or auto "
        "(cuda if torch sees a GPU). SAFER's variants and the sequence baselines train on a "
        "GPU; the saved model is the same format either way.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Train a recommender on the train split of COHORT (early stopping inside train only).

    Under ``torchrun --nproc-per-node N -m safer train ...`` the N processes train one model
    data-parallel (each on its share of the training stays, gradients averaged; gloo on CPU,
    NCCL between GPUs with --device cuda) and rank 0 alone saves it and prints the summary.
    """
    from safer import _distributed
    from safer._device import resolve_device
    from safer._learnable import ARTIFACT_FILE, torch_threads
    from safer.cohorts import parse_fractions, read_cohort, split_stays
    from safer.evaluation.experiments import train_on_split

    if out.is_file() or (
        out.is_dir() and any(out.iterdir()) and not (out / ARTIFACT_FILE).exists()
    ):
        raise SaferError(
            f"--out {out} is a file or a folder of other files; give a new or empty folder, or "
            "the folder of a saved model to replace (checked before training)"
        )
    tr, cal, te = parse_fractions(fractions)
    table = read_cohort(cohort)
    splits = split_stays(table, train=tr, calibration=cal, test=te, seed=split_seed)
    overrides = {
        k: v
        for k, v in dict(
            epochs=epochs, finetune_epochs=finetune_epochs, d_model=d_model,
            note_encoder=note_encoder, batch_size=batch_size,
        ).items()
        if v is not None
    }  # fmt: skip
    where = resolve_device(device)  # a missing GPU is reported before any work
    world = _distributed.init_from_env(device=where)
    try:
        start = time.perf_counter()
        with torch_threads(threads):
            model = train_on_split(
                table, splits, variant=variant, seed=seed, device=where,
                progress=not json_out and world.is_main, **overrides,
            )  # fmt: skip
        seconds = time.perf_counter() - start
        model.save(out)  # rank 0 only
    finally:
        _distributed.shutdown()
    if not world.is_main:
        return
    summary = {
        "model": str(out),
        "variant": variant,
        "seed": seed,
        "split_seed": split_seed,
        "split_fractions": "/".join(f"{100 * f:g}" for f in splits.fractions),
        "train_stays": int(len(model.train_stays_)),
        "processes": world.size,
        "device": model.device_,
        "fit_seconds": round(seconds, 2),
        "content_hash": model.content_hash_,
    }
    if json_out:
        print_json(summary)
    else:
        print_table("trained model", summary)


def evaluate(
    model_dir: Path = typer.Option(..., "--model", help="Folder of a saved model."),
    cohort: Path = typer.Option(..., "--cohort", help="Cohort file the model was trained on."),
    split: str = typer.Option("test", "--split", help="Split to score: train, calibration, test."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Score a saved model on one split of COHORT (split recomputed from the model's seed and
    fractions)."""
    from safer.cohorts import read_cohort
    from safer.evaluation.experiments import model_splits, score_split
    from safer.models import load_model

    model = load_model(model_dir)
    table = read_cohort(cohort)
    splits = model_splits(model, table, source=str(model_dir))
    if split == "train":
        err_console.print(
            "[yellow]warning:[/] scoring the TRAIN split: these stays were used for fitting, "
            "so the metrics are optimistic"
        )
    result = score_split(model, table, splits, split)
    result["model"] = str(model_dir)
    result["content_hash"] = model.content_hash_
    if json_out:
        print_json(result)
        return
    for group in ("survivors", "all"):
        print_table(f"{split}, {group}, {result['stays']} stays", result[group])
