import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safer.cohorts import FEATURES, REQUIRED_COLUMNS, model_columns, validate
from safer.cohorts.schema import model_frame, numeric_matrix
from safer.errors import CohortValidationError, SaferError


def _problems(df):
    with pytest.raises(CohortValidationError) as info:
        validate(df)
    return info.value.problems


def test_simulated_cohort_is_valid(cohort):
    assert validate(cohort) is cohort


def test_missing_columns_are_named(cohort):
    probs = _problems(cohort.drop(columns=["MeanBP", "SOFA"]))
    assert len(probs) == 1
    assert "['MeanBP', 'SOFA']" in probs[0] and "FEATURES" in probs[0]


def test_wrong_dtype_says_how_to_convert(cohort):
    cohort["HR"] = cohort["HR"].astype(str)
    cohort["charttime"] = cohort["charttime"].astype(str)
    probs = _problems(cohort)
    assert any("'HR' must be numeric" in p for p in probs)
    assert any("'charttime' must be a datetime" in p and "pd.to_datetime" in p for p in probs)


def test_action_out_of_range(cohort):
    cohort.loc[3, "action"] = 25
    probs = _problems(cohort)
    assert any("outside 0..24" in p for p in probs)


def test_action_inconsistent_with_bins(cohort):
    cohort.loc[3, "fluid_bin"] = (cohort.loc[3, "fluid_bin"] + 1) % 5
    assert any("5 * fluid_bin + vaso_bin" in p for p in _problems(cohort))


def test_duplicated_step(cohort):
    dup = pd.concat([cohort, cohort.iloc[[5]]], ignore_index=True)
    assert any("share a (stay_id, step)" in p for p in _problems(dup))


def test_non_consecutive_steps(cohort):
    long_stay = cohort.loc[cohort["step"] == 2, "stay_id"].iloc[0]
    rows = cohort.index[(cohort["stay_id"] == long_stay) & (cohort["step"] == 1)]
    cohort = cohort.drop(index=rows)
    assert any("0, 1, ..., T-1" in p for p in _problems(cohort))


def test_note_after_decision_time_is_rejected(cohort):
    i = cohort.index[cohort["note"] != ""][0]
    cohort.loc[i, "note_time"] = cohort.loc[i, "charttime"] + pd.Timedelta(minutes=1)
    probs = _problems(cohort)
    assert any("after their step's decision time" in p for p in probs)


def test_outcome_must_be_constant_per_stay(cohort):
    stay = cohort.loc[cohort["step"] == 2, "stay_id"].iloc[0]
    idx = cohort.index[cohort["stay_id"] == stay]
    cohort.loc[idx[0], "died"] = 1 - cohort.loc[idx[0], "died"]
    assert any("'died' (the outcome) changes" in p for p in _problems(cohort))


def test_every_problem_is_reported_at_once(cohort):
    cohort.loc[0, "action"] = 30
    cohort = pd.concat([cohort, cohort.iloc[[7]]], ignore_index=True)
    i = cohort.index[cohort["note"] != ""][1]
    cohort.loc[i, "note_time"] = cohort.loc[i, "charttime"] + pd.Timedelta(hours=2)
    probs = _problems(cohort)
    assert len(probs) >= 3


def test_missing_key_values(cohort):
    cohort["died"] = cohort["died"].astype(float)
    cohort.loc[0, "died"] = np.nan
    assert any("'died' has 1 missing" in p for p in _problems(cohort))


def test_not_a_dataframe():
    with pytest.raises(CohortValidationError, match="DataFrame"):
        validate([1, 2, 3])


def test_model_columns_hide_simulator_truth(cohort):
    cols = model_columns(cohort)
    assert "true_state" in cohort.columns
    assert not any(c.startswith("true_") for c in cols)
    assert set(REQUIRED_COLUMNS) <= set(cols)


def _mixed_frame() -> pd.DataFrame:
    """Columns of every kind a cohort file may bring (nullable, bool, text, dates), hidden too."""
    return pd.DataFrame({
        "stay_id": [3, 3, 4], "true_state": [5, 6, 7], "HR": [80.5, np.nan, 99.0],
        "gender": pd.array([1, None, 0], dtype="Int64"), "mechvent": [True, False, True],
        "note": ["a", None, "b"], "charttime": pd.to_datetime(["2024-01-01"] * 3),
        "SOFA": np.array([2, 11, 7], dtype=np.int32), "true_sofa": [1.0, 2.0, 3.0],
    })  # fmt: skip


def test_model_frame_is_the_frame_of_the_model_columns():
    df = _mixed_frame()
    seen = model_frame(df)
    pd.testing.assert_frame_equal(seen, df[model_columns(df)])
    assert seen.columns.tolist() == ["stay_id", "HR", "gender", "mechvent", "note", "charttime",
                                     "SOFA"]  # fmt: skip
    plain = df.drop(columns=["true_state", "true_sofa"])
    same = model_frame(plain)
    pd.testing.assert_frame_equal(same, plain)
    same.loc[0, "HR"] = -1.0  # a new frame: the caller's rows stay as they were
    assert plain.loc[0, "HR"] == 80.5


def test_numeric_matrix_reads_the_named_columns_as_floats():
    df = _mixed_frame()
    cols = ["SOFA", "HR", "gender", "mechvent", "stay_id"]
    got = numeric_matrix(df, cols)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, df[cols].to_numpy(dtype=np.float64))
    assert np.isnan(got[1, 1]) and np.isnan(got[1, 2]) and got[0, 3] == 1.0
    with pytest.raises(SaferError, match=r"missing columns \['Temp_C'\]"):
        numeric_matrix(df, ["HR", "Temp_C"])
    twice = pd.concat([df, df[["HR"]]], axis=1)
    with pytest.raises(SaferError, match=r"\['HR'\] more than once"):
        numeric_matrix(twice, ["HR"])
    assert numeric_matrix(twice, ["SOFA"]).tolist() == [[2.0], [11.0], [7.0]]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    row=st.integers(min_value=0, max_value=200),
    action=st.integers(min_value=-50, max_value=100),
    minutes=st.integers(min_value=-600, max_value=600),
)
def test_validate_accepts_exactly_the_valid_mutations(small_cohort, row, action, minutes):
    """Property: an action or note time mutation is rejected iff it breaks the contract."""
    df = small_cohort.copy()
    i = df.index[row % len(df)]
    df.loc[i, "action"] = action
    if 0 <= action < 25:  # keep the bins consistent so only the tested contract can fail
        df.loc[i, "fluid_bin"], df.loc[i, "vaso_bin"] = divmod(action, 5)
    df.loc[i, "note"] = "Brief ICU update: MAP 70."
    df.loc[i, "note_time"] = df.loc[i, "charttime"] + pd.Timedelta(minutes=minutes)
    should_pass = 0 <= action < 25 and minutes <= 0
    if should_pass:
        validate(df)
    else:
        with pytest.raises(CohortValidationError):
            validate(df)


def test_features_are_the_47_icu_sepsis_features_in_order():
    assert len(FEATURES) == 47 and len(set(FEATURES)) == 47
    assert FEATURES[:4] == ["gender", "mechvent", "max_dose_vaso", "re_admission"]
    assert FEATURES[-1] == "output_4hourly"
