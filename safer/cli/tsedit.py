"""``safer tsedit``: train a diffusion model of series and edit series with it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from safer.cli._common import err_console, print_json, print_table

app = typer.Typer(
    help="Diffusion time-series editing: point anchors and segment statistics.",
    no_args_is_help=True,
)


@app.command("train")
def train(
    data: str = typer.Option(..., "--data", help="cohort:FILE (a cohort table), co2 or sunspots."),
    window: int = typer.Option(48, "--window", min=2, help="Window length in time steps."),
    out: Path = typer.Option(..., "--out", help="Output directory for the model."),
    train_steps: int = typer.Option(
        3000, "--train-steps", min=1, help="Most optimiser steps (early stopping may end sooner)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same model)."),
    level: str = typer.Option(
        "global",
        "--level",
        help="global, or window: model each window relative to its own level (for series whose "
        "windows differ mostly by level, such as co2; edits keep the source's level).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Train the denoiser on windows of the cohort's vitals or a statsmodels series.

    Under ``torchrun --nproc-per-node N -m safer tsedit train ...`` the N processes train one
    model data-parallel (every rank draws the same batches and runs the network on its share
    of each; gradients averaged over gloo) and rank 0 alone saves it and prints the summary.
    """
    from safer import _distributed
    from safer.tsedit import DiffusionEditor, TseditConfig, load_training_data

    windows = load_training_data(data, window)
    config = replace(TseditConfig(), window=window, train_steps=train_steps, seed=seed,
                     level=level)  # fmt: skip
    world = _distributed.init_from_env()
    try:
        editor = DiffusionEditor(config).fit(windows, progress=not json_out and world.is_main)
        editor.save(out)  # rank 0 only
    finally:
        _distributed.shutdown()
    if not world.is_main:
        return
    tail = editor.loss_history_[-5:]
    summary = {
        "model": str(out),
        "data": data,
        "channels": editor.channels_,
        "covariates": editor.covariates_,
        "charting_indicators": editor.sparse_,
        "windows": len(windows),
        "window": window,
        "train_steps": train_steps,
        "processes": world.size,
        "epochs_run": len(editor.loss_history_),
        "best_validation_realism": editor.history_.get("best_val"),
        "final_loss": sum(tail) / len(tail),
    }
    if json_out:
        print_json(summary)
    else:
        print_table("tsedit model", {k: str(v) for k, v in summary.items()})


@app.command("edit")
def edit(
    model: Path = typer.Option(..., "--model", help="Directory written by `safer tsedit train`."),
    series: Path = typer.Option(
        ..., "--series", help="CSV: one column per channel, one row per time step."
    ),
    anchor: list[str] = typer.Option(
        [], "--anchor", help="T:CHANNEL:VALUE:CONF (CONF in [0, 1]; 1 = exact). Repeatable."
    ),
    segment: list[str] = typer.Option(
        [], "--segment", help="START:END:CHANNEL:STAT:TARGET, END exclusive. Repeatable."
    ),
    history: Path | None = typer.Option(
        None, "--history", help="CSV of the stay's rows before --series (same columns): context."
    ),
    out: Path = typer.Option(..., "--out", help="Output CSV (same layout as --series)."),
    steps: int = typer.Option(50, "--steps", min=1, help="DDIM denoising steps."),
    strength: float = typer.Option(
        0.5, "--strength", min=0.01, max=1.0, help="Noise level of the source (1 = ignore it)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed of the noise."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Edit a series under point anchors and segment statistics; report what was achieved.

    Covariate columns the model was trained with (e.g. age, gender, Weight_kg, mechvent) are
    read from --series and --history when present.
    """
    from safer.tsedit import (
        DiffusionEditor,
        parse_anchor,
        parse_segment,
        read_series_csv,
        write_series_csv,
    )

    editor = DiffusionEditor.load(model)
    frame = read_series_csv(series, editor.channels_, editor.config.window,
                            extra=editor.covariates_)  # fmt: skip
    past = None
    if history is not None:
        past = read_series_csv(history, editor.channels_, None, extra=editor.covariates_)
    anchors = [parse_anchor(a) for a in anchor]
    segments = [parse_segment(s) for s in segment]
    result = editor.edit(frame, anchors, segments, steps=steps, strength=strength, seed=seed,
                         history=past)  # fmt: skip
    write_series_csv(result.series, out)
    report = {"out": str(out), **result.report}
    if json_out:
        print_json(report)
        return
    err_console.print(f"[green]ok:[/] wrote {out}")
    for a in report["anchors"]:
        print_table(
            f"anchor {a['time']}:{a['channel']}",
            {k: a[k] for k in ("target", "confidence", "achieved", "abs_error")},
        )
    for s in report["segments"]:
        print_table(
            f"segment {s['start']}:{s['end']}:{s['channel']}:{s['statistic']}",
            {k: s[k] for k in ("target", "achieved", "rel_error")},
        )
