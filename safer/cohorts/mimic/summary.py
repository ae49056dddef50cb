"""What a real-EHR extraction found: the stay funnel, onsets, outcome, missingness, note fill,
dose ranges, and a "table one" (the ``tableone`` package) of the stays at onset."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from safer.cohorts.schema import FEATURES

__all__ = ["summarize_build", "table_one", "write_build", "sidecar_paths"]

_DERIVED_NEVER_MISSING = {
    "gender", "re_admission", "age", "mechvent", "max_dose_vaso", "SOFA", "SIRS",
    "input_total", "input_4hourly", "output_total", "output_4hourly", "cumulated_balance",
}  # fmt: skip


def _quantiles(x: pd.Series) -> dict:
    x = x[x > 0]
    if x.empty:
        return {"nonzero_steps": 0}
    q = x.quantile([0.05, 0.5, 0.95])
    return {
        "nonzero_steps": int(len(x)),
        "p5": round(float(q.iloc[0]), 4),
        "median": round(float(q.iloc[1]), 4),
        "p95": round(float(q.iloc[2]), 4),
        "max": round(float(x.max()), 4),
    }


def summarize_build(table, funnel, info, config, statements) -> dict:
    """The summary printed by ``safer cohort mimic|meds`` and written beside the cohort."""
    per_stay = table.groupby("stay_id", sort=False)
    measured = [f for f in FEATURES if f not in _DERIVED_NEVER_MISSING]
    missing = table[measured].isna().mean().round(4)
    has_note = table["note"].str.len() > 0
    return {
        "source": info.kind,
        "location": info.location,
        "stays": int(table["stay_id"].nunique()),
        "steps": int(len(table)),
        "mean_steps_per_stay": round(float(per_stay.size().mean()), 2),
        "funnel": dict(funnel),
        "mortality": round(float(per_stay["died"].first().mean()), 4),
        "mortality_definition": (
            "in-hospital death" if config.mortality == "hospital" else "death within 90 days"
        ),
        "vasopressor_formula": config.formula_name,
        "note_fill": round(float(has_note.mean()), 4),
        "feature_missing": {k: float(v) for k, v in missing.items()},
        "fluid_ml_per_4h": _quantiles(table["fluid_ml"]),
        "vaso_ugkgmin": _quantiles(table["vaso_ugkgmin"]),
        "actions": {int(a): int(n) for a, n in table["action"].value_counts().sort_index().items()},
        "statements": list(statements),
    }


_TABLE_ONE = {
    "age": "age (years)",
    "gender": "female",
    "weight_kg": "weight (kg)",
    "SOFA": "SOFA, highest step",
    "Arterial_lactate": "lactate, first step (mmol/L)",
    "MeanBP": "MAP, first step (mmHg)",
    "mechvent": "ventilated at any step",
    "max_vaso": "max vasopressor (ug/kg/min NE-eq.)",
    "total_fluid": "IV fluid over the window (mL)",
    "steps": "4-hour steps",
}


def table_one(table: pd.DataFrame) -> pd.DataFrame:
    """A "table one" of the cohort's stays by outcome (``tableone.TableOne``), as a frame.

    One row per stay: static values, the highest SOFA, the first step's lactate and MAP (the
    first measured value for the first-step ones), the highest vasopressor dose and the IV fluid
    over the window.
    """
    from tableone import TableOne

    per_stay = table.groupby("stay_id", sort=True)
    first = per_stay.first()
    stays = pd.DataFrame(
        {
            "age": first["age"],
            "gender": first["gender"],
            "weight_kg": first["weight_kg"],
            "SOFA": per_stay["SOFA"].max(),
            "Arterial_lactate": per_stay["Arterial_lactate"].first(),
            "MeanBP": per_stay["MeanBP"].first(),
            "mechvent": per_stay["mechvent"].max(),
            "max_vaso": per_stay["vaso_ugkgmin"].max(),
            "total_fluid": per_stay["fluid_ml"].sum(),
            "steps": per_stay.size(),
            "died": first["died"].map({0: "survived", 1: "died"}),
        }
    ).rename(columns=_TABLE_ONE)
    categorical = [_TABLE_ONE["gender"], _TABLE_ONE["mechvent"]]
    nonnormal = [_TABLE_ONE[c] for c in ("max_vaso", "total_fluid", "Arterial_lactate", "steps")]
    groupby = "died" if stays["died"].nunique() > 1 else None
    with warnings.catch_warnings():  # tableone's own pandas deprecation warnings
        warnings.simplefilter("ignore")
        t1 = _make(TableOne, stays, categorical, nonnormal, groupby)
    out = t1.tableone
    out.columns = [" ".join(str(p) for p in c if p and not str(p).startswith("Grouped"))
                   if isinstance(c, tuple) else str(c) for c in out.columns]  # fmt: skip
    return out.reset_index().rename(columns={"level_0": "variable", "level_1": "level"})


def _make(TableOne, stays, categorical, nonnormal, groupby):  # noqa: N803 - a class
    return TableOne(
        stays,
        columns=list(_TABLE_ONE.values()),
        categorical=categorical,
        nonnormal=nonnormal,
        groupby=groupby,
        missing=True,
        overall=True,
        pval=False,
    )


def missing_fraction(table: pd.DataFrame) -> float:
    """Fraction of measured-feature cells that are missing."""
    measured = [f for f in FEATURES if f not in _DERIVED_NEVER_MISSING]
    return float(np.mean(table[measured].isna().to_numpy()))


def sidecar_paths(out: str | Path) -> dict[str, Path]:
    """Where :func:`write_build` puts the summary and table one beside ``out``."""
    out = Path(out)
    stem = out.name
    for suffix in (".csv.gz", ".parquet", ".pq", ".csv"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return {
        "summary": out.with_name(f"{stem}.summary.json"),
        "table_one": out.with_name(f"{stem}.tableone.csv"),
    }


def write_build(build, out: str | Path) -> dict[str, Path]:
    """Write the cohort table, its summary (JSON) and its table one (CSV) side by side.

    All or nothing: the side files are written under temporary names first, the cohort
    atomically (:func:`safer.cohorts.write_cohort`), then the side files are renamed; on any
    error nothing is left under the final names.

    Returns
    -------
    dict
        ``cohort``, ``summary`` and ``table_one`` paths.
    """
    from safer._json import to_plain
    from safer.cohorts.io import write_cohort

    out = Path(out)
    paths = sidecar_paths(out)
    t1 = table_one(build.table)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = {k: p.with_name(p.name + ".partial") for k, p in paths.items()}
    try:
        partial["summary"].write_text(
            json.dumps(to_plain(build.summary, paths_as_text=True), indent=2) + "\n"
        )
        t1.to_csv(partial["table_one"], index=False)
        write_cohort(build.table, out)
        for key, path in paths.items():
            partial[key].replace(path)
    finally:
        for p in partial.values():
            p.unlink(missing_ok=True)
    return {"cohort": out, **paths}
