"""One rule for a missing value everywhere in the console: an em dash, "not charted" as its hint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from safer.review import MISSING, MISSING_HINT, banner, is_missing, shown


@pytest.mark.parametrize("value", [None, float("nan"), np.nan, pd.NA, pd.NaT, np.float32("nan")])
def test_every_missing_marker_reads_as_the_em_dash_never_none_or_nan(value):
    assert is_missing(value)
    assert shown(value) == MISSING == "—"
    assert shown(value, ".1f", " mmol/L") == "—"  # no unit after a dash
    assert shown(value, ".0f", missing=MISSING_HINT) == "not charted"  # inside a sentence


@pytest.mark.parametrize(
    ("value", "fmt", "unit", "text"),
    [
        (2.345, ".1f", " mmol/L", "2.3 mmol/L"),
        (0, ".0f", "", "0"),  # zero is a value, not a missing one
        (0.125, ".1%", "", "12.5%"),
        (200640, "", "", "200640"),
        ("", "", "", ""),  # an empty text is a value the caller chose
        (pd.Timestamp("2193-09-04 19:23:05"), "%Y-%m-%d %H:%M", "", "2193-09-04 19:23"),
        (np.int64(7), "d", " h", "7 h"),
    ],
)
def test_a_present_value_keeps_its_format_and_unit(value, fmt, unit, text):
    assert not is_missing(value)
    assert shown(value, fmt, unit) == text


def test_a_list_or_array_is_not_taken_for_one_missing_value():
    assert not is_missing([None]) and not is_missing(np.array([np.nan]))


def _detail(trajectory, step):
    return {"stay_id": 7, "age": 64.2, "gender": 1, "weight_kg": 71.0, "step": step,
            "decision_time": None, "trajectory": trajectory}  # fmt: skip


def test_banner_writes_a_lab_never_charted_as_the_dash_and_a_carried_one_with_its_time():
    rows = [
        {"step": 0, "MAP": 70, "SOFA": 6, "mechvent": None, "urine_ml": None, "balance_ml": None,
         "lactate": 2.4, "fluid_ml": 250.0, "vaso_ugkgmin": 0.0},
        {"step": 1, "MAP": 62, "SOFA": None, "mechvent": None, "urine_ml": float("nan"),
         "balance_ml": None, "lactate": None, "fluid_ml": None, "vaso_ugkgmin": None},
    ]  # fmt: skip
    items = dict(banner(_detail(rows, 1)))
    assert items["Lactate"] == "2.4 mmol/L (step 0, 4 h before)"  # last measured, not missing
    for label in ("Urine output", "Fluid balance", "Ventilation"):
        assert items[label] == MISSING, label
    first = dict(banner(_detail(rows[:1], 0)))
    assert first["Lactate"] == "2.4 mmol/L" and first["Urine output"] == MISSING
    text = " ".join(v for _, v in banner(_detail(rows, 1)))
    assert "None" not in text and "nan" not in text
