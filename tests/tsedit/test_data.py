import numpy as np
import pandas as pd
import pytest

from safer.tsedit import VITALS, TseditDataError, cohort_windows, public_windows, read_series_csv


def test_cohort_windows_pad_and_mask_short_stays(small_cohort):
    data = cohort_windows(small_cohort, window=48)
    assert data.channels == VITALS and data.values.shape[1:] == (48, 5)
    lengths = small_cohort.groupby("stay_id").size()
    # every stay of <= 48 steps gives exactly one window, valid only on its own steps
    assert len(data) >= len(lengths)
    valid_steps = data.mask[:, :, VITALS.index("HR")].sum(1)
    assert sorted(valid_steps[: len(lengths)].astype(int))[:5] == sorted(lengths.clip(upper=48))[:5]
    assert np.all(data.values[data.mask == 0] == 0)


def test_forward_fill_stays_within_a_stay():
    rows = []
    for stay, lactate in ((1, [2.0, np.nan, np.nan]), (2, [np.nan, 3.0, np.nan])):
        for step, lac in enumerate(lactate):
            rows.append(
                {"stay_id": stay, "step": step, **dict.fromkeys(VITALS, 1.0),
                 "Arterial_lactate": lac}
            )  # fmt: skip
    data = cohort_windows(pd.DataFrame(rows), window=4)
    lac = VITALS.index("Arterial_lactate")
    np.testing.assert_array_equal(data.values[0, :3, lac], [2.0, 2.0, 2.0])
    # stay 2 starts unmeasured: masked, not filled from stay 1
    np.testing.assert_array_equal(data.mask[1, :, lac], [0, 1, 1, 0])
    np.testing.assert_array_equal(data.values[1, :3, lac], [0.0, 3.0, 3.0])


def test_long_stays_give_windows_ending_at_the_last_step(small_cohort):
    longest = small_cohort.groupby("stay_id").size().max()
    one = small_cohort[small_cohort.stay_id == small_cohort.groupby("stay_id").size().idxmax()]
    data = cohort_windows(one, window=8)
    assert len(data) >= 2 and data.mask[:, :, 1].all()  # no padding: every step of HR observed
    np.testing.assert_allclose(data.values[-1, -1, 1], one["HR"].iloc[longest - 1])


def test_public_series_are_complete():
    for name in ("co2", "sunspots"):
        data = public_windows(name, window=48)
        assert data.channels == [name] and not np.isnan(data.values).any()
    with pytest.raises(TseditDataError, match="co2, sunspots|'co2', 'sunspots'"):
        public_windows("nile")


def test_series_csv_errors(tmp_path):
    path = tmp_path / "s.csv"
    pd.DataFrame({"HR": np.arange(5.0)}).to_csv(path, index=False)
    with pytest.raises(TseditDataError, match="missing channel columns \\['MeanBP'\\]"):
        read_series_csv(path, ["HR", "MeanBP"], window=8)
    with pytest.raises(TseditDataError, match="1..4 steps"):
        read_series_csv(path, ["HR"], window=4)
    assert read_series_csv(path, ["HR"], window=8).shape == (5, 1)


def test_charted_cells_and_covariates_come_with_the_windows():
    rows = [{"stay_id": 1, "step": s, **dict.fromkeys(VITALS, 1.0), "Arterial_lactate": lac,
             "age": 70.0, "gender": 1.0, "Weight_kg": np.nan if s == 0 else 80.0,
             "mechvent": float(s > 1)}
            for s, lac in enumerate([np.nan, 2.0, np.nan, np.nan, 3.0, np.nan])]  # fmt: skip
    data = cohort_windows(pd.DataFrame(rows), window=4, stride=2)
    lac = VITALS.index("Arterial_lactate")
    assert data.covariate_names == ["age", "gender", "Weight_kg", "mechvent"]
    np.testing.assert_array_equal(data.groups, [1, 1])
    np.testing.assert_array_equal(data.mask[0, :, lac], [0, 1, 1, 1])
    np.testing.assert_array_equal(data.charted[0, :, lac], [0, 1, 0, 0])  # carried, not measured
    # the second window (steps 2..5) starts on a carried value: its first cell counts as charted
    np.testing.assert_array_equal(data.charted[1, :, lac], [1, 0, 1, 0])
    np.testing.assert_array_equal(data.values[1, :, lac], [2.0, 2.0, 3.0, 3.0])
    assert np.isnan(data.covariates[0, 0, 2]) and data.covariates[0, 1, 2] == 80.0
    np.testing.assert_array_equal(data.covariates[1, :, 3], [1, 1, 1, 1])
    assert (data.observed_mask() <= data.mask).all()


def test_complete_windows_have_no_gap_and_no_padding(small_cohort):
    data = cohort_windows(small_cohort, window=8, complete=True, stride=2)
    assert data.mask.all() and len(data) > 10
    assert len(data.subset(np.arange(3))) == 3
    with pytest.raises(TseditDataError, match="no window of 500 steps"):
        cohort_windows(small_cohort, window=500, complete=True)
