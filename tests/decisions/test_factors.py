"""safer.decisions.top_factors: the features the probability of a dose depends on most, by
replacing each with a reference value over the whole stay, on a tiny real model."""

from __future__ import annotations

import numpy as np
import pytest

from safer.cohorts import split_stays
from safer.cohorts.schema import FEATURES
from safer.decisions import FACTOR_COLUMNS, top_factors, training_reference, visible
from safer.errors import SaferError
from safer.models import make_model
from safer.review import factor_lines


@pytest.fixture(scope="module")
def model_and_stay(small_cohort):
    splits = split_stays(small_cohort, seed=0)
    train, test = splits.subset(small_cohort, "train"), splits.subset(small_cohort, "test")
    model = make_model("bc-mlp", use_notes=False, epochs=2, d_model=16).fit(train, progress=False)
    sizes = test.groupby("stay_id").size()
    stay = test[test["stay_id"] == sizes[sizes >= 6].index[0]]
    return model, stay[stay["step"] <= 5].reset_index(drop=True)


def test_each_factor_is_the_decision_rescored_with_that_feature_replaced(model_and_stay):
    model, stay = model_and_stay
    table = top_factors(model, stay, k=len(FEATURES))
    assert list(table.columns) == FACTOR_COLUMNS
    base = model.predict_proba(visible(stay))[-1]
    action = table.attrs["action"]
    assert action == int(base.argmax())
    assert np.allclose(table["p_charted"], base[action])
    assert (np.diff(table["change"].abs()) <= 1e-12).all()  # largest first
    ref = training_reference(model)
    for feature in ("MeanBP", table["feature"].iloc[0]):
        edited = stay.copy()
        edited[feature] = np.where(edited[feature].notna(), ref[feature], np.nan)
        row = table[table["feature"] == feature].iloc[0]
        p = model.predict_proba(visible(edited))[-1, action]
        assert row["p_reference"] == pytest.approx(p, abs=1e-5)
        assert row["change"] == pytest.approx(base[action] - p, abs=1e-5)
        assert row["value"] == stay[feature].dropna().iloc[-1]
    assert table["change"].abs().max() > 1e-4  # the model does depend on its inputs
    # features never charted in the stay are left out
    never = [f for f in FEATURES if stay[f].isna().all()]
    assert not set(never) & set(table["feature"])


def test_a_feature_at_its_reference_already_has_no_effect_and_k_is_respected(model_and_stay):
    model, stay = model_and_stay
    ref = training_reference(model)
    same = stay.copy()
    same["HR"] = np.where(same["HR"].notna(), ref["HR"], np.nan)
    table = top_factors(model, same, action=3, k=len(FEATURES))
    assert table.attrs["action"] == 3
    assert table.loc[table["feature"] == "HR", "change"].abs().iloc[0] < 1e-6
    assert len(top_factors(model, stay, k=4)) == 4
    lines = factor_lines(top_factors(model, stay, k=2))
    assert 1 <= len(lines) <= 3
    assert "the probability would be" in lines[0] or lines[0].startswith("No feature")


def test_bad_requests_are_refused_with_what_to_do(model_and_stay, small_cohort):
    model, stay = model_and_stay
    with pytest.raises(SaferError, match="one stay"):
        top_factors(model, small_cohort.head(30), k=3)
    with pytest.raises(SaferError, match="no column or reference"):
        top_factors(model, stay, features=["MeanBP"], reference={"HR": 80.0})
    with pytest.raises(SaferError, match="pass reference="):
        training_reference(object())


def test_factor_lines_leave_out_what_barely_moves():
    import pandas as pd

    table = pd.DataFrame({"feature": ["MeanBP", "mechvent"], "value": [58.0, 1.0],
                          "reference": [78.0, 0.4], "p_charted": [0.41, 0.41],
                          "p_reference": [0.22, 0.408], "change": [0.19, 0.002]})  # fmt: skip
    lines = factor_lines(table)
    assert lines[0].startswith("MAP: 58 mmHg; at the training average (78 mmHg)")
    assert lines[0].endswith("22.0% instead of 41.0% (-19.0 points)")
    assert lines[1] == "No other feature moves it by 0.5 percentage points or more."
    assert factor_lines(table.tail(1)) == ["No feature moves it by 0.5 percentage points or more."]
