"""The model's top factors for a decision (:func:`safer.decisions.top_factors`) in words.

Each cohort feature has a name a clinician reads and its unit (:data:`FEATURE_WORDS`);
:func:`factor_lines` writes one sentence per factor: the patient's value, the reference it was
replaced by, and how the dose's probability moves.

Examples
--------
>>> import pandas as pd
>>> table = pd.DataFrame({"feature": ["MeanBP"], "value": [58.0], "reference": [78.2],
...                       "p_charted": [0.41], "p_reference": [0.22], "change": [0.19]})
>>> factor_lines(table)[0]
'MAP: 58 mmHg; at the training average (78 mmHg) the probability would be 22.0% instead of 41.0% (-19.0 points)'
"""  # noqa: E501

from __future__ import annotations

import pandas as pd

__all__ = ["FEATURE_WORDS", "feature_label", "factor_lines"]

#: cohort feature -> (words, unit, number format).
FEATURE_WORDS: dict[str, tuple[str, str, str]] = {
    "gender": ("female sex", "(0/1)", ".0f"),
    "mechvent": ("mechanical ventilation", "(0/1)", ".0f"),
    "max_dose_vaso": ("highest vasopressor dose", "ug/kg/min", ".2f"),
    "re_admission": ("re-admission", "(0/1)", ".0f"),
    "age": ("age", "y", ".0f"),
    "Weight_kg": ("weight", "kg", ".0f"),
    "GCS": ("GCS", "", ".0f"),
    "HR": ("heart rate", "/min", ".0f"),
    "SysBP": ("systolic BP", "mmHg", ".0f"),
    "MeanBP": ("MAP", "mmHg", ".0f"),
    "DiaBP": ("diastolic BP", "mmHg", ".0f"),
    "RR": ("respiratory rate", "/min", ".0f"),
    "Temp_C": ("temperature", "°C", ".1f"),
    "FiO2_1": ("FiO2", "", ".2f"),
    "Potassium": ("potassium", "mmol/L", ".1f"),
    "Sodium": ("sodium", "mmol/L", ".0f"),
    "Chloride": ("chloride", "mmol/L", ".0f"),
    "Glucose": ("glucose", "mg/dL", ".0f"),
    "Magnesium": ("magnesium", "mg/dL", ".1f"),
    "Calcium": ("calcium", "mg/dL", ".1f"),
    "Hb": ("haemoglobin", "g/dL", ".1f"),
    "WBC_count": ("white cells", "x10^9/L", ".1f"),
    "Platelets_count": ("platelets", "x10^9/L", ".0f"),
    "PTT": ("PTT", "s", ".0f"),
    "PT": ("PT", "s", ".1f"),
    "Arterial_pH": ("arterial pH", "", ".2f"),
    "paO2": ("PaO2", "mmHg", ".0f"),
    "paCO2": ("PaCO2", "mmHg", ".0f"),
    "Arterial_BE": ("base excess", "mmol/L", ".1f"),
    "HCO3": ("bicarbonate", "mmol/L", ".0f"),
    "Arterial_lactate": ("lactate", "mmol/L", ".1f"),
    "SOFA": ("SOFA", "", ".0f"),
    "SIRS": ("SIRS criteria", "", ".0f"),
    "Shock_Index": ("shock index", "", ".2f"),
    "PaO2_FiO2": ("PaO2/FiO2", "mmHg", ".0f"),
    "cumulated_balance": ("cumulative fluid balance", "mL", ",.0f"),
    "SpO2": ("SpO2", "%", ".0f"),
    "BUN": ("urea (BUN)", "mg/dL", ".0f"),
    "Creatinine": ("creatinine", "mg/dL", ".1f"),
    "SGOT": ("AST", "IU/L", ".0f"),
    "SGPT": ("ALT", "IU/L", ".0f"),
    "Total_bili": ("bilirubin", "mg/dL", ".1f"),
    "INR": ("INR", "", ".1f"),
    "input_total": ("total fluid in since admission", "mL", ",.0f"),
    "input_4hourly": ("fluid in over the last 4 h", "mL/4h", ".0f"),
    "output_total": ("total urine output since admission", "mL", ",.0f"),
    "output_4hourly": ("urine output", "mL/4h", ".0f"),
}


def _value(feature: str, v: float) -> str:
    word, unit, fmt = FEATURE_WORDS.get(feature, (feature, "", ".3g"))
    return f"{v:{fmt}} {unit}".strip() if unit != "(0/1)" else ("yes" if v >= 0.5 else "no")


def feature_label(feature: str) -> str:
    """``'MAP (mmHg)'`` for ``'MeanBP'``; an unknown feature reads as its name.

    >>> feature_label("output_4hourly"), feature_label("SOFA")
    ('urine output (mL/4h)', 'SOFA')
    """
    word, unit, _ = FEATURE_WORDS.get(feature, (feature, "", ""))
    return f"{word} ({unit})" if unit and unit != "(0/1)" else word


def factor_lines(table: pd.DataFrame, min_change: float = 0.005) -> list[str]:
    """One sentence per row of :func:`safer.decisions.top_factors`' table that moves the
    probability by at least ``min_change`` (half a percentage point by default); when some
    rows move it less, a last sentence says so."""
    out = []
    small = table["change"].abs() < min_change
    for r in table[~small].itertuples(index=False):
        word = FEATURE_WORDS.get(r.feature, (r.feature,))[0]
        if FEATURE_WORDS.get(r.feature, ("", ""))[1] == "(0/1)":
            ref = f"the training share ({r.reference:.0%})"
        else:
            ref = f"the training average ({_value(r.feature, r.reference)})"
        out.append(
            f"{word}: {_value(r.feature, r.value)}; at {ref} the probability would be "
            f"{r.p_reference:.1%} instead of {r.p_charted:.1%} ({-100 * r.change:+.1f} points)"
        )
    if small.any():
        out.append(
            ("No" if small.all() else "No other")
            + f" feature moves it by {100 * min_change:g} percentage points or more."
        )
    return out
