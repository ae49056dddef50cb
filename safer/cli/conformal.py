"""``safer calibrate`` and ``safer audit``: wire a model, a cohort and the decisions stage.

The work is :mod:`safer.decisions`' (calibrate on the calibration split, audit on the test
split); this module reads the files, recomputes the model's stay-level splits and prints.
"""

from __future__ import annotations

from pathlib import Path

import typer

from safer.cli._common import err_console, print_json, print_table
from safer.conformal import METHODS  # the --method help lists them

__all__ = ["calibrate", "audit"]


def _load(model_dir: Path, cohort_file: Path):
    from safer.cohorts import read_cohort, split_stays
    from safer.models import load_model

    model = load_model(model_dir)
    cohort = read_cohort(cohort_file)
    splits = split_stays(cohort, seed=model.split_seed_)
    return model, splits, cohort


def calibrate(
    model: Path = typer.Option(..., "--model", help="Trained model directory."),
    cohort: Path = typer.Option(..., "--cohort", help="Cohort file (.parquet or .csv)."),
    method: str = typer.Option("lac", "--method", help=f"Gate method: {', '.join(METHODS)}."),
    alpha: float = typer.Option(0.1, "--alpha", help="Level in (0, 1)."),
    delta: float = typer.Option(None, "--delta", help="LTT failure probability (ltt only)."),
    c: float = typer.Option(None, "--c", help="Uncertainty cut-off kappa >= c (selection)."),
    groups: str = typer.Option(None, "--groups", help="Cohort column for Mondrian sets."),
    out: Path = typer.Option(..., "--out", help="Gate JSON file to write."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Calibrate a conformal gate on the model's calibration split only."""
    from safer.decisions import calibrate as calibrate_gate

    m, splits, frame = _load(model, cohort)
    train, cal = splits.subset(frame, "train"), splits.subset(frame, "calibration")
    gate = calibrate_gate(m, train, cal, method=method, alpha=alpha, delta=delta, c=c,
                          groups_column=groups, seed=0)  # fmt: skip
    gate.save(out)
    summary = {
        "gate": str(out),
        "method": gate.method,
        "alpha": gate.alpha,
        "n_calibration": len(cal),
        "model_hash": gate.model_hash,
        "calibration_hash": gate.calibration_hash,
    }
    if json_out:
        print_json(summary)
    else:
        print_table("conformal gate", summary)


def audit(
    model: Path = typer.Option(..., "--model", help="Trained model directory."),
    gate: Path = typer.Option(..., "--gate", help="Gate JSON written by `safer calibrate`."),
    cohort: Path = typer.Option(..., "--cohort", help="Cohort file (.parquet or .csv)."),
    out: Path = typer.Option(..., "--out", help="HTML report to write."),
    subgroup: list[str] = typer.Option(None, "--subgroup", help="Extra subgroup column(s)."),
    json_out: bool = typer.Option(False, "--json", help="Print the overall figures as JSON."),
) -> None:
    """Audit a gate on the test split: realised guarantees, subgroups, trade-off plot.

    Writes OUT (HTML) and OUT with .json beside it, and records the report's path in the gate
    file so the store and the console's audit page show the realised guarantee.
    """
    from safer.conformal import load_gate
    from safer.decisions import audit as audit_gate
    from safer.decisions import record_report

    m, splits, frame = _load(model, cohort)
    g = load_gate(gate, model_hash=m.content_hash_)
    report = audit_gate(m, g, splits.subset(frame, "test"), subgroup)
    json_path = out.with_suffix(".json")
    record_report(g, report, out, json_path).save(gate)
    if json_out:
        print_json(report["overall"] | {"report": str(out), "json": str(json_path)})
    else:
        err_console.print(f"[green]wrote[/] {out}")
        print_table("coverage audit", report["overall"])
