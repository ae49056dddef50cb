import numpy as np
import pytest

from safer.tsedit import Anchor, InfeasibleEditError, SegmentStat, parse_anchor, parse_segment
from safer.tsedit.controls import edit_report, project_segments, resolve

CH = ["HR", "MeanBP"]


def test_parse_round_trip():
    assert parse_anchor("5:HR:110:0.5") == Anchor(5, "HR", 110.0, 0.5)
    assert parse_anchor("5:HR:110").confidence == 1.0
    assert parse_segment("0:6:MeanBP:Mean:70") == SegmentStat(0, 6, "MeanBP", "mean", 70.0)
    with pytest.raises(InfeasibleEditError, match="T:CHANNEL:VALUE:CONF"):
        parse_anchor("5:HR")
    with pytest.raises(InfeasibleEditError, match="START:END"):
        parse_segment("0:6:HR:mean:x")


def test_every_problem_is_listed_at_once():
    with pytest.raises(InfeasibleEditError) as info:
        resolve(
            [Anchor(12, "HR", 1, 1), Anchor(1, "SpO2", 1, 1), Anchor(1, "HR", 1, 1.5)],
            [SegmentStat(3, 3, "HR", "mean", 1), SegmentStat(0, 4, "HR", "median", 1),
             SegmentStat(5, 11, "HR", "mean", 1)],
            CH, length=10,
        )  # fmt: skip
    text = str(info.value)
    assert len(info.value.problems) == 6
    for needle in ("outside the series", "unknown channel 'SpO2'", "confidence must be",
                   "segment is empty", "unknown statistic", "within 0..10"):  # fmt: skip
        assert needle in text


def test_contradictions_with_hard_anchors():
    anchors = [Anchor(0, "HR", 100, 1), Anchor(1, "HR", 110, 1)]
    with pytest.raises(InfeasibleEditError, match="every point is a hard anchor"):
        resolve(anchors, [SegmentStat(0, 2, "HR", "mean", 90)], CH, 5)
    resolve(anchors, [SegmentStat(0, 2, "HR", "mean", 105)], CH, 5)  # consistent: fine
    resolve(anchors[:1] + [Anchor(1, "HR", 110, 0.9)], [SegmentStat(0, 2, "HR", "mean", 90)], CH, 5)
    with pytest.raises(InfeasibleEditError, match="exceeds the max target"):
        resolve(anchors, [SegmentStat(0, 4, "HR", "max", 105)], CH, 5)
    with pytest.raises(InfeasibleEditError, match="same point"):
        resolve([Anchor(0, "HR", 1, 1), Anchor(0, "HR", 2, 1)], [], CH, 5)


@pytest.mark.parametrize("stat,target", [("mean", 3.0), ("sum", -4.0), ("min", 0.5), ("max", 9)])
def test_projection_is_exact_and_keeps_hard_anchors(stat, target):
    x = np.random.default_rng(0).normal(size=(10, 2))
    plan = resolve([Anchor(4, "HR", 7.0, 1)], [SegmentStat(2, 8, "HR", stat, target)], CH, 10)
    x[4, 0] = 7.0
    y = project_segments(x, plan)
    got = {"mean": np.mean, "sum": np.sum, "min": np.min, "max": np.max}[stat](y[2:8, 0])
    assert got == pytest.approx(target, abs=1e-9)
    assert y[4, 0] == 7.0
    np.testing.assert_array_equal(y[:, 1], x[:, 1])  # other channel untouched
    np.testing.assert_array_equal(y[[0, 1, 8, 9], 0], x[[0, 1, 8, 9], 0])  # outside untouched


def test_overlapping_segments_both_met():
    x = np.zeros((10, 2))
    segs = [SegmentStat(0, 6, "HR", "mean", 2.0), SegmentStat(4, 10, "HR", "mean", -1.0)]
    y = project_segments(x, resolve([], segs, CH, 10))
    assert y[0:6, 0].mean() == pytest.approx(2.0, abs=1e-8)
    assert y[4:10, 0].mean() == pytest.approx(-1.0, abs=1e-8)


def test_contradictory_segments_are_best_effort_with_the_residual_reported():
    segs = [SegmentStat(0, 4, "HR", "mean", 10.0), SegmentStat(0, 4, "HR", "mean", 20.0)]
    plan = resolve([], segs, CH, 6)  # not refused: no hard anchor is involved
    report = edit_report(project_segments(np.zeros((6, 2)), plan), plan)
    assert report["max_segment_rel_error"] > 0.1
    assert {round(s["achieved"], 6) for s in report["segments"]} == {20.0}


def test_projection_on_the_charting_grid_keeps_all_but_one_point_on_it():
    x = np.array([[80.0, 0], [84.0, 0], [79.0, 0], [90.0, 0], [85.0, 0], [88.0, 0]])
    plan = resolve([Anchor(2, "HR", 79.0, 1.0)], [SegmentStat(0, 6, "HR", "mean", 87.25)], CH, 6)
    y = project_segments(x, plan, quantum=np.array([1.0, 0.0]))
    assert y[:, 0].mean() == pytest.approx(87.25, abs=1e-9) and y[2, 0] == 79.0
    off_grid = np.abs(y[:, 0] - np.round(y[:, 0])) > 1e-9
    assert off_grid.sum() == 1  # the target needs a half: exactly one point carries it
    moved = (y[:, 0] - x[:, 0])[~off_grid & (np.arange(6) != 2)]
    assert moved.max() - moved.min() <= 1.0  # whole quanta, spread evenly
    overlapping = [SegmentStat(0, 4, "HR", "mean", 81.3), SegmentStat(2, 6, "HR", "mean", 86.6)]
    z = project_segments(x, resolve([], overlapping, CH, 6), quantum=np.array([1.0, 0.0]))
    assert z[0:4, 0].mean() == pytest.approx(81.3, abs=1e-8)
    assert z[2:6, 0].mean() == pytest.approx(86.6, abs=1e-8)
