"""A short summary of a cohort table (what `safer cohort simulate` and `safer demo` print)."""

from __future__ import annotations

import pandas as pd

__all__ = ["summarize"]


def summarize(cohort: pd.DataFrame) -> dict:
    """Stays, steps, mortality, note fill and missingness of a cohort table."""
    per_stay = cohort.groupby("stay_id", sort=False)
    steps = per_stay.size()
    has_note = cohort["note"].fillna("").str.len() > 0
    from safer.cohorts.schema import FEATURES

    return {
        "stays": int(len(steps)),
        "steps": int(len(cohort)),
        "mean_steps_per_stay": round(float(steps.mean()), 2),
        "mortality": round(float(per_stay["died"].first().mean()), 4),
        "note_fill": round(float(has_note.mean()), 4),
        "feature_missing": round(float(cohort[FEATURES].isna().to_numpy().mean()), 4),
        "truncated_stays": int(cohort.attrs.get("truncated_stays", 0)),
    }
