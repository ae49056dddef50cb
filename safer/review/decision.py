"""The decision view's content: patient banner, trends in clinical units, doses given before.

All three read :func:`safer.store.decision_detail`'s record (the stay's steps up to the
decision, the decision step's own doses already left out) and never query the database.

Examples
--------
>>> detail = {"stay_id": 7, "age": 64.2, "gender": 1, "weight_kg": 71.0, "step": 1,
...           "decision_time": None, "trajectory": [
...     {"step": 0, "charttime": None, "MAP": 70, "SOFA": 6, "mechvent": 0, "urine_ml": 200,
...      "balance_ml": 1500, "lactate": None, "fluid_ml": 250.0, "vaso_ugkgmin": 0.0},
...     {"step": 1, "charttime": None, "MAP": 62, "SOFA": 8, "mechvent": 1, "urine_ml": 80,
...      "balance_ml": 2100, "lactate": 3.1, "fluid_ml": None, "vaso_ugkgmin": None}]}
>>> items = dict(banner(detail))
>>> items["SOFA"], items["Lactate"], items["Urine output"]
('8 (+2 since step 0)', '3.1 mmol/L', '80 mL/4h')
>>> dict(banner(dict(detail, trajectory=detail["trajectory"][:1], step=0)))["Lactate"]
'—'
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from safer.review.values import MISSING, shown

__all__ = ["banner", "trends", "doses_given", "REFERENCE_RANGES", "TREND_PANELS"]

#: variable -> (label with unit, low, high) of the usual adult target / reference range.
REFERENCE_RANGES: dict[str, tuple[str, float | None, float | None]] = {
    "MAP": ("MAP (mmHg)", 65.0, None),
    "HR": ("Heart rate (/min)", 60.0, 100.0),
    "lactate": ("Lactate (mmol/L)", None, 2.0),
    "SOFA": ("SOFA", None, None),
    "urine_ml": ("Urine output (mL/4h)", 120.0, None),
    "SpO2": ("SpO2 (%)", 92.0, None),
    "creatinine": ("Creatinine (mg/dL)", None, 1.2),
}
#: chart panels of the decision view, each a few variables from :data:`REFERENCE_RANGES`.
TREND_PANELS: dict[str, tuple[str, ...]] = {
    "Haemodynamics": ("MAP", "HR"),
    "Lactate": ("lactate",),
    "SOFA": ("SOFA",),
    "Urine output": ("urine_ml",),
}


def _num(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


def _last(traj: list[dict], key: str) -> tuple[float | None, int | None]:
    for row in reversed(traj):
        v = _num(row.get(key))
        if v is not None:
            return v, row["step"]
    return None, None


def _dose_line(row: dict | None) -> str:
    if row is None:
        return "none charted yet (first block of the stay)"
    fluid, vaso = _num(row.get("fluid_ml")), _num(row.get("vaso_ugkgmin"))
    f = "no IV fluid" if not fluid else f"IV fluid {fluid:.0f} mL/4h"
    v = "no vasopressor" if not vaso else f"vasopressor {vaso:.3g} ug/kg/min"
    return f"{f}, {v} (block before the decision)"


def banner(detail: dict[str, Any]) -> list[tuple[str, str]]:
    """The patient banner as (label, value) pairs, in clinical units, values as of the decision.

    Labs missing at the decision show their last measured value and when it was measured; a
    value never charted up to the decision is :data:`~safer.review.values.MISSING` (an em dash;
    the console adds the hint :data:`~safer.review.values.MISSING_HINT`).
    """
    traj = detail["trajectory"]
    sex = {0: "male", 1: "female"}.get(detail.get("gender"), "sex unknown")
    age = _num(detail.get("age"))
    weight = _num(detail.get("weight_kg"))
    who = [f"stay {detail['stay_id']}", "age unknown" if age is None else f"{age:.0f} y", sex,
           "weight unknown" if weight is None else f"{weight:.0f} kg"]  # fmt: skip
    step = detail["step"]
    out = [("Patient", " · ".join(who))]
    vent, _ = _last(traj, "mechvent")
    out.append(("Ventilation", MISSING if vent is None else
                ("mechanically ventilated" if vent >= 0.5 else "not ventilated")))  # fmt: skip
    given = [r for r in traj if r["step"] < step]
    out.append(("Doses given", _dose_line(given[-1] if given else None)))
    sofa, _ = _last(traj, "SOFA")
    if sofa is None:
        out.append(("SOFA", MISSING))
    else:
        first = next((r for r in traj if _num(r.get("SOFA")) is not None), None)
        change = "" if first is None or first["step"] == step else (
            f" ({sofa - _num(first['SOFA']):+.0f} since step {first['step']})")  # fmt: skip
        out.append(("SOFA", f"{sofa:.0f}{change}"))
    for key, label, unit, fmt in (("MAP", "MAP", "mmHg", ".0f"),
                                  ("lactate", "Lactate", "mmol/L", ".1f"),
                                  ("urine_ml", "Urine output", "mL/4h", ".0f")):  # fmt: skip
        v, at = _last(traj, key)
        if v is None:
            out.append((label, MISSING))
        else:
            when = "" if at == step else f" (step {at}, {4 * (step - at)} h before)"
            out.append((label, f"{v:{fmt}} {unit}{when}"))
    bal, _ = _last(traj, "balance_ml")
    out.append(("Fluid balance", shown(None if bal is None else bal / 1000, "+.1f",
                                       " L cumulative")))  # fmt: skip
    return out


def trends(detail: dict[str, Any]) -> pd.DataFrame:
    """Long table of the charted values up to the decision, for charts.

    Columns: ``hours`` (relative to the decision, <= 0), ``step``, ``variable``, ``label``
    (with its unit), ``panel``, ``value``, ``low``, ``high`` (reference range). Missing values
    are left out rather than drawn as zero, so a lab measured every other block is a series of
    points, not a broken line.
    """
    rows = []
    step = detail["step"]
    panel_of = {v: p for p, vs in TREND_PANELS.items() for v in vs}
    for r in detail["trajectory"]:
        for var, panel in panel_of.items():
            value = _num(r.get(var))
            if value is None:
                continue
            label, low, high = REFERENCE_RANGES[var]
            rows.append({"hours": -4 * (step - r["step"]), "step": r["step"], "variable": var,
                         "label": label, "panel": panel, "value": value, "low": low,
                         "high": high})  # fmt: skip
    columns = ["hours", "step", "variable", "label", "panel", "value", "low", "high"]
    return pd.DataFrame(rows, columns=columns)


def doses_given(detail: dict[str, Any]) -> pd.DataFrame:
    """The doses given in the blocks *before* the decision (never the decision's own block).

    Columns: ``hours`` (block start relative to the decision), ``step``, ``fluid_ml`` (mL/4h),
    ``vaso_ugkgmin`` (ug/kg/min norepinephrine-equivalent).
    """
    step = detail["step"]
    rows = [
        {"hours": -4 * (step - r["step"]), "step": r["step"],
         "fluid_ml": _num(r.get("fluid_ml")) or 0.0,
         "vaso_ugkgmin": _num(r.get("vaso_ugkgmin")) or 0.0}
        for r in detail["trajectory"] if r["step"] < step
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["hours", "step", "fluid_ml", "vaso_ugkgmin"])
