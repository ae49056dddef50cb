import numpy as np
import pytest
import torch

from safer.errors import NotFittedError, SaferError
from safer.tsedit import (
    Anchor,
    DiffusionEditor,
    SegmentStat,
    TseditConfig,
    TseditDataError,
    public_windows,
    resolve,
)
from safer.tsedit.baselines import inpaint_edit, overwrite_smooth_edit
from safer.tsedit.controls import guidance_loss
from safer.tsedit.model import Denoiser


def test_denoiser_shapes_without_data():
    net = Denoiser(n_channels=3, window=10, d_model=16, n_heads=2, n_layers=1)
    x = torch.zeros(4, 10, 3)
    out = net(x, torch.zeros(4, dtype=torch.long), x, x, torch.ones_like(x))
    assert out.shape == (4, 10, 3)


def test_use_before_fit_says_call_fit_first():
    with pytest.raises(NotFittedError, match="call fit first"):
        DiffusionEditor().edit(np.zeros((4, 1)))


def test_window_mismatch_is_a_clear_error():
    with pytest.raises(TseditDataError, match="config.window is 48"):
        DiffusionEditor(TseditConfig(window=48)).fit(public_windows("co2", window=16))


def test_edit_meets_hard_anchors_and_statistics_exactly(vitals_editor, small_cohort):
    sizes = small_cohort.groupby("stay_id").size()
    stay = small_cohort[small_cohort.stay_id == sizes[sizes >= 8].index[0]]
    series = stay[vitals_editor.channels_].iloc[:8].reset_index(drop=True)
    anchors = [Anchor(2, "HR", 130.0, 1.0), Anchor(6, "MeanBP", 60.0, 1.0),
               Anchor(4, "SpO2", 90.0, 0.5)]  # fmt: skip
    segments = [SegmentStat(0, 5, "MeanBP", "mean", 70.0), SegmentStat(3, 8, "HR", "max", 125.0),
                SegmentStat(0, 8, "output_4hourly", "sum", 3000.0)]  # fmt: skip
    result = vitals_editor.edit(series, anchors, segments, steps=10, seed=1)
    out = result.series
    assert list(out.columns) == vitals_editor.channels_ and len(out) == len(series)
    assert out.loc[2, "HR"] == 130.0 and out.loc[6, "MeanBP"] == 60.0
    assert out.loc[0:4, "MeanBP"].mean() == pytest.approx(70.0, abs=1e-6)
    assert out.loc[3:7, "HR"].max() == pytest.approx(125.0, abs=1e-9)
    assert out["output_4hourly"].sum() == pytest.approx(3000.0, abs=1e-6)
    assert result.report["hard_anchor_mae"] == 0.0
    assert result.report["max_segment_rel_error"] < 1e-9
    assert not out.isna().any().any()


def test_soft_anchor_pulls_in_proportion(co2_editor):
    src = public_windows("co2", window=16).values[3]
    free = co2_editor.edit(src, [], steps=8, seed=0).series["co2"][5]
    errs = []
    for c in (0.0, 0.5, 0.9):
        got = co2_editor.edit(src, [Anchor(5, "co2", 400.0, c)], steps=8, seed=0).series["co2"][5]
        errs.append(abs(got - 400.0))
    assert errs[0] == pytest.approx(abs(free - 400.0), abs=1e-9)  # c = 0 is no control
    assert errs[0] > errs[1] > errs[2] > 0


def test_guidance_moves_the_prediction_towards_the_target(co2_editor):
    plan = resolve([], [SegmentStat(2, 10, "co2", "mean", 360.0)], ["co2"], 16)
    hook = co2_editor._control_hook(plan)
    x0 = torch.zeros(1, 16, 1)
    norm = co2_editor.normalizer_
    before = guidance_loss(x0[0], plan, norm.mean, norm.std)
    after = guidance_loss(hook(x0, 0)[0], plan, norm.mean, norm.std)
    assert after < 0.5 * before


def test_same_seed_same_edit_and_save_load_identical(co2_editor, tmp_path):
    src = public_windows("co2", window=16).values[0, :12]
    kw = dict(anchors=[Anchor(3, "co2", 330.0, 1.0)], segments=[], steps=6, seed=4)
    a = co2_editor.edit(src, **kw).series
    pd_b = co2_editor.edit(src, **kw).series
    np.testing.assert_array_equal(a.values, pd_b.values)
    loaded = DiffusionEditor.load(co2_editor.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.edit(src, **kw).series.values, a.values)
    assert loaded.embed(src[None]).shape == (1, 16)
    with pytest.raises(SaferError, match="safer tsedit train"):
        DiffusionEditor.load(tmp_path / "nowhere")


def test_series_longer_than_window_is_refused(co2_editor):
    with pytest.raises(TseditDataError, match="at most 16"):
        co2_editor.edit(np.ones((20, 1)))


def test_baselines_meet_hard_anchors(co2_editor):
    src = public_windows("co2", window=16).values[1]
    anchors, segs = [Anchor(4, "co2", 335.0, 1.0)], [SegmentStat(8, 14, "co2", "mean", 320.0)]
    for result in (inpaint_edit(co2_editor, src, anchors, segs, steps=6),
                   overwrite_smooth_edit(src, ["co2"], anchors, segs)):  # fmt: skip
        assert result.series.loc[4, "co2"] == 335.0
        assert result.series.loc[8:13, "co2"].mean() == pytest.approx(320.0, abs=1e-6)
