"""safer.review.what_moved: what a what-if edit moved, in words and clinical units."""

from __future__ import annotations

import numpy as np
import pandas as pd

from safer.actions import action_id
from safer.review import series_table, what_moved


def scored(action: int, top: int, pset: list[int] | None, probs: dict[int, float]) -> dict:
    p = np.zeros(25)
    for a, v in probs.items():
        p[a] = v
    return {"action": action, "top_action": top, "prediction_set": pset, "probabilities": p}


def test_an_unchanged_decision_reads_unchanged_and_names_no_move():
    a = action_id(2, 0)
    old = scored(a, a, [a], {a: 0.9, 0: 0.1})
    words = what_moved(old, dict(old))
    assert words[0] == "The recommendation did not change: IV fluid 50-180 mL/4h; vasopressor none."
    assert not any("moved from" in w or "set went" in w for w in words)
    assert words[-1].startswith("No dose's probability moved")


def test_a_changed_decision_names_each_drug_the_set_and_the_probabilities():
    a, b = action_id(2, 0), action_id(1, 2)
    old = scored(a, a, [a, action_id(3, 0)], {a: 0.7, b: 0.1, 0: 0.2})
    new = scored(b, b, [b], {a: 0.2, b: 0.6, 0: 0.2})
    words = what_moved(old, new)
    assert words[0].startswith("The recommendation changed: IV fluid 50-530 mL/4h; vasopressor")
    assert "IV fluid down from 50-180 mL/4h to up to 50 mL/4h" in words[1]
    assert "vasopressor up from none to 0.08-0.22 ug/kg/min" in words[1]
    assert any("most likely dose moved from IV fluid" in w for w in words)
    assert any(w.startswith("The gate's set went from 2 to 1 dose(s)") for w in words)
    probs = next(w for w in words if w.startswith("Probabilities"))
    assert "70% -> 20%" in probs and "10% -> 60%" in probs and "none, vasopressor none" not in probs


def test_a_deferral_with_another_set_reads_as_still_deferring():
    a, b = action_id(0, 0), action_id(1, 0)
    old = scored(-1, a, [a, b], {a: 0.5, b: 0.5})
    new = scored(-1, a, [a, b, action_id(2, 0)], {a: 0.5, b: 0.5})
    assert what_moved(old, new)[0].startswith("The gate still defers, with another set: no ")


def test_deferral_to_a_dose_and_back():
    a = action_id(0, 0)
    defer = scored(-1, a, [a, action_id(1, 0)], {a: 0.5, action_id(1, 0): 0.5})
    dose = scored(a, a, [a], {a: 1.0})
    assert "The gate now backs one dose: IV fluid none, vasopressor none." in what_moved(
        defer, dose
    )
    assert "The gate no longer backs a single dose: defer to usual care." in what_moved(dose, defer)


def test_the_edited_vitals_are_named_with_steps_and_units_and_missing_values_are_honest():
    before = pd.DataFrame(
        {"MeanBP": [70.0, 72.0, 74.0], "Arterial_lactate": [np.nan, 2.0, np.nan]}, index=[4, 5, 6]
    )
    after = before.copy()
    after.loc[[5, 6], "MeanBP"] = [50.0, 54.0]
    after.loc[6, "Arterial_lactate"] = 6.0  # an anchor on a value that was not charted
    a = action_id(0, 0)
    words = what_moved(scored(a, a, None, {a: 1.0}), scored(a, a, None, {a: 1.0}), before, after)
    assert words[-1] == (
        "Vitals edited: MAP (mmHg) at step 5: 72 -> 50, step 6: 74 -> 54; lactate (mmol/L) at "
        "step 6: not charted -> 6.0."
    )
    long_before = pd.DataFrame({"MeanBP": np.arange(70.0, 76.0)}, index=range(6))
    long_after = long_before - 20.0
    assert (
        what_moved(
            scored(a, a, None, {a: 1.0}), scored(a, a, None, {a: 1.0}), long_before, long_after
        )[-1]
        == "Vitals edited: MAP at steps 0-5: mean 72 -> 52 mmHg."
    )
    same = what_moved(scored(a, a, None, {a: 1.0}), scored(a, a, None, {a: 1.0}), before, before)
    assert same[-1].startswith("No vital changed")


def test_the_vitals_table_runs_down_in_time_with_a_what_if_row_under_each_step_moved():
    steps = [3, 4, 5]
    before = pd.DataFrame({"MeanBP": [80.0, 75.0, 70.0], "HR": [90.0, 95.0, 100.0],
                           "Arterial_lactate": [2.0, np.nan, np.nan]}, index=steps)  # fmt: skip
    table, moved = series_table(before)
    assert list(table.columns) == ["step", "series", "MAP", "heart rate", "lactate"]
    assert table["step"].tolist() == steps and set(table["series"]) == {"charted"}
    assert not moved.to_numpy().any()
    # MAP and heart rate edited at step 5, lactate set at step 4 (it was not charted there)
    after = before.copy()
    after.loc[5, ["MeanBP", "HR"]] = [55.0, 120.0]
    after.loc[4, "Arterial_lactate"] = 4.0
    table, moved = series_table(before, after)
    assert list(table.columns) == ["step", "series", "MAP", "heart rate", "lactate"]  # as many
    assert list(zip(table["step"], table["series"], strict=True)) == [
        (3, "charted"), (4, "charted"), (4, "what-if"), (5, "charted"), (5, "what-if")]  # fmt: skip
    assert table.loc[2, "lactate"] == 4.0 and table.loc[2, "MAP"] == 75.0
    assert np.isnan(table.loc[4, "lactate"])  # not charted, not set: stays missing
    assert table.loc[4, ["MAP", "heart rate"]].tolist() == [55.0, 120.0]
    assert moved.columns.equals(table.columns) and moved.index.equals(table.index)
    assert {(r, c) for r, c in zip(*np.nonzero(moved.to_numpy()), strict=True)} == {
        (2, 4), (4, 2), (4, 3)}  # the moved cells only, in what-if rows  # fmt: skip
