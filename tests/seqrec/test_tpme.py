"""TPME (IISAN's training-time, parameter and memory efficiency) on a hand-worked example."""

from __future__ import annotations

import pytest

from safer.seqrec.benchmark import TPME_WEIGHTS, tpme


def test_tpme_is_the_weighted_sum_of_min_max_normalised_costs():
    # three systems: time 14 / 50 / 5 s, params 10.7 / 21 / 0.4 M, memory 1210 / 4000 / 900 MiB
    # normalised: time 0.2 / 1 / 0, params 0.5 / 1 / 0, memory 0.1 / 1 / 0
    # system 0: 0.45 * 0.2 + 0.1 * 0.5 + 0.45 * 0.1 = 0.09 + 0.05 + 0.045 = 0.185
    scores = tpme([14, 50, 5], [10.7e6, 21e6, 0.4e6], [1210, 4000, 900])
    assert scores == pytest.approx([0.185, 1.0, 0.0])
    assert TPME_WEIGHTS == (0.45, 0.1, 0.45)


def test_tpme_weights_and_degenerate_columns():
    # equal memory everywhere contributes nothing; weights are taken as given
    assert tpme([1, 3], [5, 5], [7, 7], weights=(1, 1, 1)) == pytest.approx([0.0, 1.0])
    assert tpme([2, 1], [10, 30], [0, 1], weights=(0.2, 0.3, 0.5)) == pytest.approx([0.2, 0.8])
    with pytest.raises(ValueError, match="one time"):
        tpme([1, 2], [1], [1, 2])
