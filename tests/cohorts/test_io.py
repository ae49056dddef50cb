import pandas as pd
import pytest

from safer.cohorts import read_cohort, write_cohort
from safer.errors import CohortReadError, CohortValidationError


@pytest.mark.parametrize("name", ["c.parquet", "c.csv"])
def test_roundtrip(tmp_path, small_cohort, name):
    path = write_cohort(small_cohort, tmp_path / name)
    back = read_cohort(path)
    assert len(back) == len(small_cohort)
    pd.testing.assert_series_equal(back["note"], small_cohort["note"], check_dtype=False)
    pd.testing.assert_series_equal(back["MeanBP"], small_cohort["MeanBP"])
    assert (back["note_time"].isna() == small_cohort["note_time"].isna()).all()


def test_corrupt_file(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(CohortReadError, match="could not read"):
        read_cohort(bad)


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(CohortReadError, match="no such file"):
        read_cohort(tmp_path / "nope.parquet")
    with pytest.raises(CohortReadError, match="unknown cohort file type"):
        read_cohort(tmp_path / "c.xlsx")


def test_invalid_table_is_not_written(tmp_path, cohort):
    cohort.loc[0, "action"] = 99
    with pytest.raises(CohortValidationError):
        write_cohort(cohort, tmp_path / "c.parquet")
    assert not (tmp_path / "c.parquet").exists()
