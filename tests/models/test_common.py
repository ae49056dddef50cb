"""The column readers the models share: the values of pandas' own conversions, every dtype."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from safer.models._common import as_datetime, as_float

COLUMNS = [
    pd.Series([1, 2, 3]),
    pd.Series([1.5, np.nan, -2.0]),
    pd.Series([1, None, 3], dtype="Int64"),
    pd.Series([True, False, True]),
    pd.Series(["4", "x", None]),
    pd.Series(["4", "5", "6"], dtype="string"),
]
DATES = [
    pd.Series(pd.to_datetime(["2024-01-01 04:00", None])),
    pd.Series(pd.to_datetime(["2024-01-01 04:00"]).as_unit("us")),
    pd.Series(pd.to_datetime(["2024-01-01 04:00"]).tz_localize("UTC")),
    pd.Series(["2024-01-01 04:00", None]),
]


@pytest.mark.parametrize("column", COLUMNS, ids=lambda c: str(c.dtype))
def test_as_float_is_to_numeric_coerced(column):
    want = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    got = as_float(column)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("column", DATES, ids=lambda c: str(c.dtype))
def test_as_datetime_is_to_datetime(column):
    want = pd.to_datetime(column).to_numpy()
    got = as_datetime(column)
    assert got.dtype == want.dtype
    assert ((got == want) | (pd.isna(got) & pd.isna(want))).all()
