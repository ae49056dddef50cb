import numpy as np
import pytest

from safer.actions import (
    FLUID_BINS,
    N_ACTIONS,
    VASO_BINS,
    action_id,
    action_label,
    bin_of_dose,
    describe_action,
    split_action,
)
from safer.errors import SaferError


def test_grid_roundtrip_for_every_action():
    for a in range(N_ACTIONS):
        f, v = split_action(a)
        assert action_id(f, v) == a
        assert a == 5 * f + v


def test_vectorised_roundtrip():
    a = np.arange(N_ACTIONS)
    f, v = split_action(a)
    np.testing.assert_array_equal(action_id(f, v), a)


def test_describe_prints_doses_not_indices():
    assert describe_action(0) == "IV fluid none, vasopressor none"
    assert describe_action(24) == "IV fluid > 530 mL/4h, vasopressor > 0.45 ug/kg/min"
    assert describe_action(11) == "IV fluid 50-180 mL/4h, vasopressor 0-0.08 ug/kg/min"
    assert action_label(11) == "F2/V1"


@pytest.mark.parametrize("bad", [-1, 25, 3.5])
def test_bad_action_is_a_clear_error(bad):
    with pytest.raises(SaferError, match="0..24"):
        split_action(bad)


def test_bins_are_contiguous_and_increasing():
    for bins in (FLUID_BINS, VASO_BINS):
        for lo, hi in zip(bins[1:-1], bins[2:], strict=True):
            assert lo.high == hi.low and lo.low < lo.high


def test_bin_of_dose_matches_edges():
    fluids = [0, 1, 50, 50.1, 180, 181, 530, 531, 5000]
    assert bin_of_dose(fluids, FLUID_BINS).tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert bin_of_dose([0, 0.08, 0.1, 0.45, 0.5], VASO_BINS).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(SaferError):
        bin_of_dose([-1.0], FLUID_BINS)
