import numpy as np
import pytest

from safer.cohorts import DEFAULT_FRACTIONS, parse_fractions, split_stays
from safer.errors import SaferError


def test_no_stay_crosses_splits(small_cohort):
    s = split_stays(small_cohort, seed=0)
    tr, ca, te = (set(x.tolist()) for x in (s.train, s.calibration, s.test))
    assert not (tr & ca) and not (tr & te) and not (ca & te)
    assert tr | ca | te == set(small_cohort["stay_id"].unique())
    for name in ("train", "calibration", "test"):
        rows = s.subset(small_cohort, name)
        assert set(rows["stay_id"]) == set(s.ids(name).tolist())


def test_split_is_stratified_and_sized(small_cohort):
    s = split_stays(small_cohort, seed=1)
    n = small_cohort["stay_id"].nunique()
    assert abs(len(s.train) - 0.6 * n) <= 2
    overall = small_cohort.groupby("stay_id")["died"].first().mean()
    for name in ("train", "calibration", "test"):
        rate = s.subset(small_cohort, name).groupby("stay_id")["died"].first().mean()
        assert abs(rate - overall) < 0.02


def test_split_is_seeded(small_cohort):
    a, b = split_stays(small_cohort, seed=3), split_stays(small_cohort, seed=3)
    c = split_stays(small_cohort, seed=4)
    np.testing.assert_array_equal(a.test, b.test)
    assert not np.array_equal(a.test, c.test)


def test_bad_fractions_and_names(small_cohort):
    with pytest.raises(SaferError, match="positive"):
        split_stays(small_cohort, train=0)
    with pytest.raises(SaferError, match="unknown split"):
        split_stays(small_cohort).ids("validation")


def test_fractions_are_parsed_recorded_and_checked(small_cohort):
    assert parse_fractions("50/40/10") == parse_fractions("0.5, 0.4, 0.1") == (0.5, 0.4, 0.1)
    s = split_stays(small_cohort, train=5, calibration=4, test=1, seed=0)
    assert s.fractions == (0.5, 0.4, 0.1)
    assert split_stays(small_cohort, seed=0).fractions == DEFAULT_FRACTIONS
    n = small_cohort["stay_id"].nunique()
    assert abs(len(s.calibration) - 0.4 * n) <= 2
    for bad in ("60/40", "a/b/c", "60/-20/60"):
        with pytest.raises(SaferError, match="three"):
            parse_fractions(bad)
