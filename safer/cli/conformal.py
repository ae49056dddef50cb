"""``safer calibrate`` and ``safer audit``: wire a model, a cohort and the conformal layer.

This is the only place that joins the model (``safer.models.load_model``), the cohort (splits,
subgroup columns) and ``safer.conformal`` (arrays in, decisions out).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import typer

from safer.cli._common import err_console, print_json, print_table
from safer.conformal import METHODS, Gate, calibrate_gate, load_gate
from safer.conformal.report import audit as audit_report
from safer.conformal.report import write_report
from safer.errors import SaferError

__all__ = ["calibrate", "audit", "calibrate_and_report", "subgroup_frame"]

_AGE_BANDS = ([0, 40, 60, 80, np.inf], ["<40", "40-59", "60-79", "80+"])
_SOFA_BANDS = ([-np.inf, 5, 10, np.inf], ["0-5", "6-10", "11+"])


def subgroup_frame(rows: pd.DataFrame, extra: list[str] | None = None) -> pd.DataFrame:
    """Age bands, gender, SOFA bands, mechanical ventilation (+ named columns) per decision."""
    out = pd.DataFrame(index=rows.index)
    if "age" in rows:
        out["age band"] = pd.cut(rows["age"], _AGE_BANDS[0], labels=_AGE_BANDS[1], right=False)
    if "gender" in rows:
        out["gender"] = rows["gender"].map({0: "male", 1: "female"}).fillna("unknown")
    if "SOFA" in rows:
        out["SOFA band"] = pd.cut(rows["SOFA"], _SOFA_BANDS[0], labels=_SOFA_BANDS[1])
    if "mechvent" in rows:
        out["mechanical ventilation"] = np.where(rows["mechvent"] > 0.5, "yes", "no")
    for col in extra or []:
        if col not in rows:
            raise SaferError(f"subgroup column {col!r} is not in the cohort; pick an existing one")
        out[col] = rows[col]
    return out.astype(str).reset_index(drop=True)


def _load(model_dir: Path, cohort_file: Path):
    from safer.cohorts import read_cohort, split_stays
    from safer.models import load_model

    model = load_model(model_dir)
    cohort = read_cohort(cohort_file)
    splits = split_stays(cohort, seed=model.split_seed_)
    return model, splits, cohort


def calibrate_and_report(
    model,
    train: pd.DataFrame,
    calibration: pd.DataFrame,
    test: pd.DataFrame,
    *,
    method: str = "lac",
    alpha: float = 0.1,
    delta: float | None = None,
    c: float | None = None,
    groups_column: str | None = None,
    subgroup_columns: list[str] | None = None,
    gate_path=None,
    report_path=None,
    json_path=None,
    seed: int = 0,
) -> tuple[Gate, dict]:
    """Calibrate a gate on ``calibration`` and audit it on ``test`` (what ``safer demo`` calls).

    ``model`` follows the ``safer.models`` interface (predict_proba, uncertainty, embed,
    content_hash_). ``train`` is used only by ``selection`` (the ridge), never for scores.
    """
    gate = _calibrate(model, train, calibration, method=method, alpha=alpha, delta=delta, c=c,
                      groups_column=groups_column, seed=seed)  # fmt: skip
    if gate_path is not None:
        gate.save(gate_path)
    report = _audit(model, gate, test, subgroup_columns)
    if report_path is not None:
        write_report(report, report_path, json_path)
    return gate, report


def _calibrate(model, train, calibration, *, method, alpha, delta, c, groups_column, seed) -> Gate:
    """The gate of ``model`` on ``calibration``; ``train`` feeds only selection's ridge."""
    kw = {}
    if method == "selection":
        kw = {
            "embedding_train": model.embed(train),
            "kappa_train": model.uncertainty(train),
            "embedding_cal": model.embed(calibration),
            "kappa_cal": model.uncertainty(calibration),
        }
    groups_cal = None
    if groups_column is not None:
        if groups_column not in calibration:
            raise SaferError(f"--groups column {groups_column!r} is not in the cohort")
        groups_cal = calibration[groups_column].astype(str).to_numpy()
    return calibrate_gate(
        method,
        model.predict_proba(calibration),
        calibration["action"].to_numpy(),
        alpha=alpha,
        delta=delta,
        c=c,
        groups_cal=groups_cal,
        model_hash=model.content_hash_,
        groups_column=groups_column,
        seed=seed,
        **kw,
    )


def _audit(model, gate: Gate, test: pd.DataFrame, subgroup_columns=None) -> dict:
    selection = gate.method == "selection"
    groups = None
    if gate.groups_column is not None:
        groups = test[gate.groups_column].astype(str).to_numpy()
    return audit_report(
        gate,
        model.predict_proba(test),
        test["action"].to_numpy(),
        kappa=model.uncertainty(test) if selection else None,
        embedding=model.embed(test) if selection else None,
        groups=groups,
        subgroups=subgroup_frame(test, subgroup_columns),
        model_hash=model.content_hash_,
    )


def calibrate(
    model: Path = typer.Option(..., "--model", help="Trained model directory."),
    cohort: Path = typer.Option(..., "--cohort", help="Cohort file (.parquet or .csv)."),
    method: str = typer.Option("lac", "--method", help=f"One of {', '.join(METHODS)}."),
    alpha: float = typer.Option(0.1, "--alpha", help="Level in (0, 1)."),
    delta: float = typer.Option(None, "--delta", help="LTT failure probability (ltt only)."),
    c: float = typer.Option(None, "--c", help="Uncertainty cut-off kappa >= c (selection)."),
    groups: str = typer.Option(None, "--groups", help="Cohort column for Mondrian sets."),
    out: Path = typer.Option(..., "--out", help="Gate JSON file to write."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Calibrate a conformal gate on the model's calibration split only."""
    m, splits, frame = _load(model, cohort)
    train, cal = splits.subset(frame, "train"), splits.subset(frame, "calibration")
    gate = _calibrate(m, train, cal, method=method, alpha=alpha, delta=delta, c=c,
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
    json_out: bool = typer.Option(False, "--json", help="Also write OUT.json and print it."),
) -> None:
    """Audit a gate on the test split: realised guarantees, subgroups, trade-off plot."""
    m, splits, frame = _load(model, cohort)
    g = load_gate(gate, model_hash=m.content_hash_)
    report = _audit(m, g, splits.subset(frame, "test"), subgroup)
    json_path = out.with_suffix(".json") if json_out else None
    write_report(report, out, json_path)
    if json_out:
        print_json(report["overall"] | {"report": str(out), "json": str(json_path)})
    else:
        err_console.print(f"[green]wrote[/] {out}")
        print_table("coverage audit", report["overall"])
