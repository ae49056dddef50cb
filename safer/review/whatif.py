"""What a what-if edit moved, in words and clinical units.

:func:`what_moved` compares the decision as charted with the decision after an edit
(:meth:`safer.decisions.WhatIf.score` of each) and the vitals before and after
(:attr:`safer.decisions.WhatIfResult.series`), and says what changed: the recommendation, each
drug's dose, the gate's set, the doses whose probability moved most, and the vitals edited.

Examples
--------
>>> from safer.actions import action_id
>>> old = {"action": action_id(2, 0), "top_action": action_id(2, 0),
...        "prediction_set": [action_id(2, 0)], "probabilities": [0.0] * 25}
>>> new = dict(old, action=action_id(2, 1), top_action=action_id(2, 1),
...            prediction_set=[action_id(2, 1)])
>>> what_moved(old, new)[0]
'The recommendation changed: IV fluid 50-180 mL/4h; vasopressor none -> IV fluid 50-180 mL/4h; vasopressor up to 0.08 ug/kg/min.'
"""  # noqa: E501

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from safer.actions import FLUID_BINS, VASO_BINS, describe_action, split_action
from safer.review.doses import bins_text, dose_range, recommendation_text
from safer.review.values import MISSING_HINT, shown

__all__ = ["VITAL_WORDS", "series_table", "vital_label", "what_moved"]

PER_STEP = 3  # edits of at most this many steps are listed step by step, longer ones as means

#: the editor's channels (:data:`safer.tsedit.VITALS`) as words, unit and number format.
VITAL_WORDS: dict[str, tuple[str, str, str]] = {
    "MeanBP": ("MAP", "mmHg", ".0f"),
    "HR": ("heart rate", "/min", ".0f"),
    "Arterial_lactate": ("lactate", "mmol/L", ".1f"),
    "output_4hourly": ("urine output", "mL/4h", ".0f"),
    "SpO2": ("SpO2", "%", ".0f"),
}


def vital_label(channel: str) -> str:
    """``'MAP (mmHg)'`` for ``'MeanBP'``; an unknown channel reads as its name.

    >>> vital_label("output_4hourly"), vital_label("Temp_C")
    ('urine output (mL/4h)', 'Temp_C')
    """
    if channel not in VITAL_WORDS:
        return channel
    word, unit, _ = VITAL_WORDS[channel]
    return f"{word} ({unit})"


def _moved(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """True where ``after`` differs from ``before`` (two missing values are the same)."""
    b, a = before.to_numpy(float), after[before.columns].to_numpy(float)
    same = (b == a) | (np.isnan(b) & np.isnan(a))
    return pd.DataFrame(~same, index=before.index, columns=before.columns)


def series_table(
    charted: pd.DataFrame, edited: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The vitals window as a table that runs down in time, one column per vital.

    One row per step as charted (``series`` "charted"); with ``edited``, under each step the
    edit moved a "what-if" row with the values scored (every vital, the unmoved ones equal to the
    chart). Columns: ``step``, ``series``, then each vital by its word only ("MAP", "heart
    rate"; :func:`vital_label` gives the unit for the header's help), so the table keeps its
    width whatever the number of vitals edited. The data stay numbers (missing: NaN).

    Returns the table (a fresh 0..n-1 index) and a boolean frame of the same shape, True at
    the what-if cells the edit moved (to highlight them).

    >>> before = pd.DataFrame({"MeanBP": [80.0, 70.0], "HR": [90.0, None]}, index=[4, 5])
    >>> table, moved = series_table(before, before.assign(MeanBP=[80.0, 55.0]))
    >>> table
       step   series   MAP  heart rate
    0     4  charted  80.0        90.0
    1     5  charted  70.0         NaN
    2     5  what-if  55.0         NaN
    >>> moved.loc[2].tolist()
    [False, False, True, False]
    """
    words = {ch: VITAL_WORDS[ch][0] if ch in VITAL_WORDS else ch for ch in charted.columns}
    rows = charted.rename(columns=words).assign(series="charted")
    flags = pd.DataFrame(False, index=charted.index, columns=list(words.values()))
    if edited is not None:
        moved = _moved(charted, edited).rename(columns=words)
        steps = moved.index[moved.any(axis=1).to_numpy()]
        what_if = edited.loc[steps, list(charted.columns)].rename(columns=words)
        rows = pd.concat([rows, what_if.assign(series="what-if")])
        flags = pd.concat([flags, moved.loc[steps]])
    order = np.lexsort((rows["series"].to_numpy() != "charted", rows.index.to_numpy()))
    rows = rows.rename_axis("step").reset_index().iloc[order]
    table = rows[["step", "series", *words.values()]].reset_index(drop=True)
    flags = flags.iloc[order].reset_index(drop=True)
    moved_cells = pd.DataFrame(False, index=table.index, columns=table.columns)
    moved_cells[flags.columns] = flags.to_numpy()
    return table, moved_cells


def _drug_move(old: int, new: int, bins, drug: str) -> str | None:
    if old == new:
        return None
    way = "up" if new > old else "down"
    return f"{drug} {way} from {bins_text([old], bins)} to {bins_text([new], bins)}"


def _steps(steps: list[int]) -> str:
    return f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}-{steps[-1]}"


def _vitals_moved(before: pd.DataFrame, after: pd.DataFrame) -> list[str]:
    out = []
    changed = _moved(before, after)
    for ch in before.columns:
        b, a = before[ch].to_numpy(float), after[ch].to_numpy(float)
        moved = changed[ch].to_numpy()
        if not moved.any():
            continue
        word, unit, fmt = VITAL_WORDS.get(ch, (ch, "", ".3g"))
        steps = [int(s) for s in before.index[moved]]
        was, now = b[moved], a[moved]

        if len(steps) <= PER_STEP:  # a few steps: each one, so no change hides in a mean
            each = [f"step {t}: {shown(x, fmt, missing=MISSING_HINT)} -> "
                    f"{shown(y, fmt, missing=MISSING_HINT)}"
                    for t, x, y in zip(steps, was, now, strict=True)]  # fmt: skip
            out.append(f"{word} ({unit}) at " + ", ".join(each) if unit else
                       f"{word} at " + ", ".join(each))  # fmt: skip
            continue
        charted = was[~np.isnan(was)]
        old = shown(charted.mean() if len(charted) else None, fmt, missing=MISSING_HINT)
        new = f"{np.nanmean(now):{fmt}}"
        out.append(f"{word} at {_steps(steps)}: mean {old} -> {new} {unit}".strip())
    return out


def what_moved(
    charted: dict[str, Any],
    scored: dict[str, Any],
    vitals_before: pd.DataFrame | None = None,
    vitals_after: pd.DataFrame | None = None,
    top: int = 3,
) -> list[str]:
    """Sentences saying what an edit moved, most important first.

    Parameters
    ----------
    charted, scored : dict
        :meth:`safer.decisions.WhatIf.score` of the decision as charted and as edited
        (``action``, ``top_action``, ``prediction_set``, ``probabilities``).
    vitals_before, vitals_after : pandas.DataFrame, optional
        The vitals window as charted and as scored (indexed by step); the edited cells are
        named with their steps and the mean before and after.
    top : int
        How many doses whose probability moved most to name.
    """
    old_text = recommendation_text(charted["action"], charted["prediction_set"])
    new_text = recommendation_text(scored["action"], scored["prediction_set"])
    same = charted["action"] == scored["action"] and sorted(
        charted["prediction_set"] or []
    ) == sorted(scored["prediction_set"] or [])
    if same:
        out = [f"The recommendation did not change: {old_text}."]
    elif charted["action"] < 0 and scored["action"] < 0:
        out = [
            "The gate still defers, with another set: "
            f"{old_text.removeprefix('defer: ')} -> {new_text.removeprefix('defer: ')}."
        ]
    else:
        out = [f"The recommendation changed: {old_text} -> {new_text}."]
    if charted["action"] >= 0 and scored["action"] >= 0:
        (f0, v0), (f1, v1) = split_action(charted["action"]), split_action(scored["action"])
        moves = [m for m in (_drug_move(f0, f1, FLUID_BINS, "IV fluid"),
                             _drug_move(v0, v1, VASO_BINS, "vasopressor")) if m]  # fmt: skip
        if moves:
            out.append("Recommended dose: " + "; ".join(moves) + ".")
    elif charted["action"] >= 0:
        out.append("The gate no longer backs a single dose: defer to usual care.")
    elif scored["action"] >= 0:
        out.append(f"The gate now backs one dose: {describe_action(scored['action'])}.")
    if charted["top_action"] != scored["top_action"]:
        out.append(
            f"The model's most likely dose moved from {describe_action(charted['top_action'])} "
            f"to {describe_action(scored['top_action'])}."
        )
    if charted["prediction_set"] is not None and scored["prediction_set"] is not None:
        old, new = set(charted["prediction_set"]), set(scored["prediction_set"])
        if old != new:
            parts = [f"The gate's set went from {len(old)} to {len(new)} dose(s)"]
            if new - old:
                parts.append(f"now also {dose_range(new - old)}")
            if old - new:
                parts.append(f"no longer {dose_range(old - new)}")
            out.append("; ".join(parts) + ".")
    p0 = np.asarray(charted["probabilities"], dtype=float)
    p1 = np.asarray(scored["probabilities"], dtype=float)
    delta = p1 - p0
    order = [int(a) for a in np.argsort(-np.abs(delta), kind="stable")[:top]]
    moved = [a for a in order if abs(delta[a]) >= 0.005]
    if moved:
        out.append(
            "Probabilities that moved most: "
            + "; ".join(f"{describe_action(a)} {p0[a]:.0%} -> {p1[a]:.0%}" for a in moved)
            + "."
        )
    else:
        out.append("No dose's probability moved by half a percentage point or more.")
    if vitals_before is not None and vitals_after is not None:
        vitals = _vitals_moved(vitals_before, vitals_after)
        out.append(
            "Vitals edited: " + "; ".join(vitals) + "."
            if vitals
            else "No vital changed (the edit kept the charted values)."
        )
    return out
