"""Doses and sets in clinical units, and reasons in words."""

from __future__ import annotations

from safer.actions import FLUID_BINS, VASO_BINS, action_id
from safer.review import (
    bins_text,
    dose_range,
    in_set,
    reason_in_words,
    recommendation_text,
    set_meaning,
)


def test_bins_read_as_ranges_with_units():
    assert bins_text([0], FLUID_BINS) == "none"
    assert bins_text([2, 3], FLUID_BINS) == "50-530 mL/4h"
    assert bins_text([0, 1, 2], FLUID_BINS) == "none to 180 mL/4h"
    assert bins_text([1, 2, 3, 4], VASO_BINS) == "any non-zero dose"
    assert bins_text([0, 3], VASO_BINS) == "none or 0.22-0.45 ug/kg/min"
    assert bins_text(range(5), VASO_BINS) == "any dose"


def test_a_set_reads_as_ranges_and_says_what_it_settles():
    no_pressor_any_fluid = [action_id(f, 0) for f in range(5)]
    assert set_meaning(no_pressor_any_fluid) == "no vasopressor; IV fluid uncertain (any dose)"
    assert dose_range(no_pressor_any_fluid) == "IV fluid any dose; vasopressor none"
    ragged = [action_id(0, 0), action_id(1, 0), action_id(1, 1)]
    assert dose_range(ragged) == (
        "IV fluid none to 50 mL/4h with vasopressor none; "
        "or IV fluid up to 50 mL/4h with vasopressor up to 0.08 ug/kg/min"
    )
    assert "F0" not in dose_range(ragged) and "V1" not in dose_range(ragged)


def test_recommendation_is_a_dose_range_or_defer_never_jargon():
    single = action_id(2, 1)
    assert recommendation_text(single, [single]) == (
        "IV fluid 50-180 mL/4h; vasopressor up to 0.08 ug/kg/min"
    )
    assert recommendation_text(single, None) == recommendation_text(single, [single])
    assert recommendation_text(-1, []) == "defer to usual care"
    assert recommendation_text(-1, None) == "defer to usual care"
    assert recommendation_text(-1, [0, 5]).startswith("defer: no vasopressor")


def test_reasons_in_words():
    text = reason_in_words("lac", "abstain: conformal set of 2 actions", -1, [0, 5], 0.1)
    assert "90% confidence" in text and "2 doses" in text and "conformal" not in text
    assert "Defer to usual care" in text
    one = reason_in_words("lac", "single-action conformal set", 5, [5], 0.1)
    assert one.startswith("One dose") and "mL/4h" in one
    spi = "Suggest IV fluid none ... survival gain >= +1.0 points (95% confidence)."
    assert reason_in_words("spi", spi, 3, [3], 0.05) == spi  # already in words
    assert "No safety gate" in reason_in_words(None, "no gate", 3, None, None, 0.42)
    assert "0.42" in reason_in_words(None, "no gate", 3, None, None, 0.42)


def test_in_set():
    assert in_set(3, [3, 4]) is True and in_set(9, [3, 4]) is False
    assert in_set(None, [3]) is None and in_set(3, None) is None
