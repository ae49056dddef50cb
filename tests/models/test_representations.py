"""The history-reading representations (``features+locf``, ``features+notes+locf``): a value
missing at a decision is carried forward from the same stay's earlier rows only -- never from a
later row, another stay or an action -- whatever the order of the rows."""

from __future__ import annotations

import numpy as np
import pytest

from safer.errors import SaferError
from safer.models import representation
from safer.models.representations import ROW_WISE

KINDS = ("features+locf", "features+notes+locf")


@pytest.fixture(scope="module")
def rows(tiny_cohort):
    stays = tiny_cohort["stay_id"].unique()[:12]
    return tiny_cohort[tiny_cohort["stay_id"].isin(stays)].reset_index(drop=True)


@pytest.mark.parametrize("kind", KINDS)
def test_a_decision_reads_only_its_stay_up_to_its_step(rows, kind):
    full = representation(kind, None, rows)
    assert kind not in ROW_WISE and full.index.equals(rows.index)
    for t in (0, 1, 3):
        upto = rows[rows["step"] <= t]
        np.testing.assert_array_equal(representation(kind, None, upto), full.loc[upto.index])
    # later rows rewritten, actions and hidden columns changed: the earlier rows' values stay
    changed = rows.copy()
    later = changed["step"] > 2
    changed.loc[later, "Arterial_lactate"] = 99.0
    changed["action"] = 24
    changed["true_state"] = -1
    np.testing.assert_array_equal(representation(kind, None, changed)[~later], full[~later])


@pytest.mark.parametrize("kind", KINDS)
def test_the_rows_order_changes_nothing(rows, kind):
    shuffled = rows.sample(frac=1.0, random_state=0)
    np.testing.assert_array_equal(
        representation(kind, None, shuffled), representation(kind, None, rows).loc[shuffled.index]
    )


def test_a_missing_value_is_the_stays_last_charted_one_and_never_another_stays(rows):
    plain = representation("features", None, rows)
    carried = representation("features+locf", None, rows)
    charted = plain.notna().to_numpy()
    np.testing.assert_array_equal(carried.to_numpy()[charted], plain.to_numpy()[charted])
    assert carried.isna().to_numpy().sum() < plain.isna().to_numpy().sum()
    # a stay's first row carries nothing in, even right after another stay's charted value
    first = (rows["step"] == 0).to_numpy()
    np.testing.assert_array_equal(carried[first].isna(), plain[first].isna())
    # by hand: the lactate of one stay, step by step
    stay = (
        rows.groupby("stay_id")["Arterial_lactate"]
        .apply(lambda s: s.isna().any() and s.notna().any())
        .idxmax()
    )
    one = rows[rows["stay_id"] == stay].sort_values("step")
    expected = one["Arterial_lactate"].ffill().to_numpy()
    np.testing.assert_array_equal(carried.loc[one.index, "Arterial_lactate"], expected)


def test_history_kinds_need_the_stay_and_step(rows):
    with pytest.raises(SaferError, match="stay_id"):
        representation("features+locf", None, rows.drop(columns="stay_id"))
