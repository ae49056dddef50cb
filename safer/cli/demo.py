"""``safer demo``: the whole pipeline on the embedded cohort, with progress bars."""

from __future__ import annotations

from pathlib import Path

import typer

from safer.cli._common import err_console, print_json, print_table
from safer.cohorts import simulate_cohort, split_stays, summarize, write_cohort


def demo(
    stays: int = typer.Option(2000, "--stays", min=30, help="Stays in the simulated cohort."),
    seed: int = typer.Option(0, "--seed", help="Seed of the cohort and the splits."),
    out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for the demo's files."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Simulate the embedded cohort, validate it, split it by stay and summarise it."""
    progress = not json_out
    if progress:
        err_console.rule("1. cohort: simulate the embedded ICU-Sepsis cohort")
    cohort = simulate_cohort(stays, seed, progress=progress)
    cohort_file = write_cohort(cohort, out / "cohort.parquet")
    splits = split_stays(cohort, seed=seed)
    result = {
        "cohort": {"file": str(cohort_file), **summarize(cohort)},
        "splits": splits.sizes(),
    }
    if json_out:
        print_json(result)
        return
    print_table("cohort", result["cohort"])
    print_table("stay-level splits (stratified by outcome)", result["splits"])
