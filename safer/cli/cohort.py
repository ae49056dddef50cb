"""``safer cohort``: simulate, validate and summarise cohort tables."""

from __future__ import annotations

from pathlib import Path

import typer

from safer.cli._common import err_console, print_json, print_table

app = typer.Typer(help="Build, validate and summarise cohort tables.", no_args_is_help=True)


@app.command("simulate")
def simulate(
    stays: int = typer.Option(2000, "--stays", min=1, help="Number of ICU stays to simulate."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same table)."),
    out: Path = typer.Option(..., "--out", help="Output file: .parquet or .csv."),
    noise_scale: float = typer.Option(
        0.6, "--noise-scale", min=0.0, help="Within-state measurement noise (x within-cluster SD)."
    ),
    note_fill: float = typer.Option(
        0.85, "--note-fill", min=0.0, max=1.0, help="Fraction of steps that carry a note."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Simulate EHR-like stays with notes from the embedded ICU-Sepsis MDP."""
    from safer.cohorts import SimulationConfig, simulate_cohort, summarize, write_cohort

    config = SimulationConfig(noise_scale=noise_scale, note_fill=note_fill)
    cohort = simulate_cohort(stays, seed, config=config, progress=not json_out)
    write_cohort(cohort, out)
    summary = {"file": str(out), "seed": seed, **summarize(cohort)}
    if json_out:
        print_json(summary)
    else:
        print_table("simulated cohort", summary)


@app.command("validate")
def validate_file(
    file: Path = typer.Argument(..., help="Cohort file (.parquet or .csv)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Check a cohort file against the schema; list every problem, or summarise it."""
    from safer.cohorts import read_cohort, summarize

    cohort = read_cohort(file)
    summary = {"file": str(file), "valid": True, **summarize(cohort)}
    if json_out:
        print_json(summary)
    else:
        err_console.print(f"[green]ok:[/] {file} is a valid cohort table")
        print_table("cohort", summary)
