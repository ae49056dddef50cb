from pathlib import Path

import numpy as np
import pytest
import torch

from safer.errors import NotFittedError, SaferError
from safer.tsedit import (
    Anchor,
    DiffusionEditor,
    SegmentStat,
    SeriesData,
    TseditConfig,
    TseditDataError,
    cohort_windows,
    public_windows,
    resolve,
)
from safer.tsedit.baselines import inpaint_edit, overwrite_smooth_edit
from safer.tsedit.controls import guidance_loss
from safer.tsedit.model import Denoiser

LEGACY = Path(__file__).parent / "data" / "legacy_affine"


def test_denoiser_shapes_without_data():
    net = Denoiser(n_channels=3, window=10, d_model=16, n_heads=2, n_layers=1)
    x = torch.zeros(4, 10, 3)
    out = net(x, torch.zeros(4, dtype=torch.long), x, x, torch.ones_like(x))
    assert out.shape == (4, 10, 3)
    net = Denoiser(3, 10, 16, 2, 1, n_covariates=2, mask_padding=True)
    valid = torch.ones_like(x)
    valid[:, 6:] = 0
    cov = torch.zeros(4, 10, 4)
    a = net(x, torch.zeros(4, dtype=torch.long), x, x, valid, cov)
    x2 = x.clone()
    x2[:, 7:] = 5.0  # what sits in the padding cannot change the series
    b = net(x2, torch.zeros(4, dtype=torch.long), x, x, valid, cov)
    torch.testing.assert_close(a[:, :6], b[:, :6])


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


def test_soft_anchor_lands_the_fraction_c_of_the_way(co2_editor):
    src = public_windows("co2", window=16).values[3]
    free = co2_editor.edit(src, [], steps=8, seed=0).series["co2"][5]
    got = {}
    for c in (0.0, 0.25, 0.5, 0.9):
        res = co2_editor.edit(src, [Anchor(5, "co2", 400.0, c)], steps=8, seed=0)
        got[c] = res.series["co2"][5]
        if c > 0:
            entry = res.report["anchors"][0]
            assert entry["free_value"] == pytest.approx(free, abs=1e-9)
            assert entry["pulled_fraction"] == pytest.approx(c, abs=1e-9)
    assert got[0.0] == pytest.approx(free, abs=1e-9)  # c = 0 is no control
    for c in (0.25, 0.5, 0.9):
        assert got[c] == pytest.approx(free + c * (400.0 - free), abs=1e-9)


def test_soft_anchor_in_one_pass_matches_the_two_pass_edit(co2_editor):
    """The two-pass definition, spelled out with the public API: the edit without the soft
    anchor gives ``free``; the edit with a hard anchor at (1 - c) * free + c * value is the
    second pass. The one-pass edit (its free twin in the same batch) lands on the same value
    at the anchor, and within one charting quantum or two (0.1 ppm) elsewhere, because its pin
    follows the twin's prediction step by step instead of the twin's final value."""
    data = public_windows("co2", window=16)
    std = co2_editor.normalizer_.std[0]
    gaps = []
    for i in range(6):
        src = data.values[i]
        hard = [Anchor(2, "co2", float(src[2, 0]) + 3.0, 1.0)]
        soft = Anchor(9, "co2", float(src[9, 0]) - 4.0, 0.5)
        one = co2_editor.edit(src, [*hard, soft], steps=20, seed=i).series["co2"].to_numpy()
        free = co2_editor.edit(src, hard, steps=20, seed=i).series["co2"][9]
        pinned = Anchor(9, "co2", 0.5 * free + 0.5 * soft.value, 1.0)
        two = co2_editor.edit(src, [*hard, pinned], steps=20, seed=i).series["co2"].to_numpy()
        assert one[9] == pytest.approx(two[9], abs=1e-9) and one[2] == two[2]
        gaps.append(np.abs(one - two).max() / std)
    assert max(gaps) < 0.05  # channel SDs (one quantum is 0.006 SD)
    assert np.mean(gaps) < 0.02


def test_soft_anchor_calibration_on_a_known_gaussian():
    """Cells i.i.d. N(10, 2^2): generating with a soft anchor at 16 must land, in expectation,
    at 10 + c * (16 - 10), the posterior mean the confidence promises."""
    rng = np.random.default_rng(0)
    values = rng.normal(10.0, 2.0, size=(600, 8, 1))
    data = SeriesData(values, np.ones_like(values), ["x"])
    cfg = TseditConfig(window=8, d_model=16, n_heads=2, n_layers=1, diffusion_steps=50,
                       train_steps=400, batch_size=64, patience=None,
                       transform="affine")  # fmt: skip
    editor = DiffusionEditor(cfg).fit(data, progress=False)
    sources = [np.full((8, 1), 10.0)] * 300
    for c in (0.25, 0.5):
        out = editor.edit_many(sources, [[Anchor(4, "x", 16.0, c)]] * 300, steps=10,
                               strength=1.0, seed=1)  # fmt: skip
        landed = np.array([r.series["x"][4] for r in out])
        assert landed.mean() == pytest.approx(10.0 + c * 6.0, abs=0.45)
        free = np.array([r.report["anchors"][0]["free_value"] for r in out])
        assert free.std() == pytest.approx(2.0, rel=0.25)  # the free value is a real draw


def test_guidance_moves_the_prediction_towards_the_target(co2_editor):
    src = public_windows("co2", window=16).values[2]
    segments = [SegmentStat(2, 10, "co2", "mean", 360.0)]
    item = co2_editor._item(src, [], segments, None, None, 0)
    batch = co2_editor._edit_batch([item], None)
    hook = co2_editor._control_hook(batch)
    norm = co2_editor.normalizer_
    plan = resolve([], segments, ["co2"], 16)

    def loss(z):
        x = torch.tensor(co2_editor.transforms_.inverse(z[0].numpy()), dtype=torch.float32)
        return float(guidance_loss((x - norm.mean[0]) / norm.std[0], plan, norm.mean, norm.std))

    x0 = batch.source.clone()
    assert loss(hook(x0, 0)) < 0.5 * loss(x0)


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


def test_a_folder_saved_by_the_previous_version_loads_and_edits():
    editor = DiffusionEditor.load(LEGACY)  # saved before transforms, covariates and indicators
    assert editor.transforms_.kinds == ["affine"] and not editor.sparse_
    assert editor.config.transform == "affine" and editor.config.mask_padding is False
    src = public_windows("co2", window=8).values[0]
    res = editor.edit(src, [Anchor(3, "co2", 330.0, 1.0)], [SegmentStat(4, 8, "co2", "mean", 335)],
                      steps=5)  # fmt: skip
    assert res.series["co2"][3] == 330.0
    assert res.series["co2"][4:8].mean() == pytest.approx(335.0, abs=1e-6)
    z = editor.transforms_.forward(src)
    np.testing.assert_allclose(z, (src - editor.normalizer_.mean) / editor.normalizer_.std,
                               atol=1e-9)  # fmt: skip


def test_vitals_edit_rounds_to_charting_precision_and_respects_bounds(vitals_editor):
    t = vitals_editor.transforms_
    assert dict(zip(vitals_editor.channels_, t.quantum, strict=True))["Arterial_lactate"] == 0.1
    assert t.high[vitals_editor.channels_.index("SpO2")] == 100.0
    out = vitals_editor.sample(40, seed=3, steps=6)
    for c, q in enumerate(t.quantum):
        np.testing.assert_allclose(out[..., c] / q, np.round(out[..., c] / q), atol=1e-6)
    assert out[..., vitals_editor.channels_.index("SpO2")].max() <= 100.0
    assert out[..., vitals_editor.channels_.index("output_4hourly")].min() >= 0.0


def test_lactate_is_charted_sparsely_and_rendered_as_a_chart_reads(vitals_editor, small_cohort):
    assert vitals_editor.sparse_ == ["Arterial_lactate"]
    lac = vitals_editor.channels_.index("Arterial_lactate")
    out = vitals_editor.sample(60, seed=0, steps=6)
    repeats = np.mean(np.diff(out[:, :, lac], axis=1) == 0)
    assert repeats > 0.2  # carried-forward plateaus, as in the data (about half the steps)
    sizes = small_cohort.groupby("stay_id").size()
    stay = small_cohort[small_cohort.stay_id == sizes[sizes >= 10].index[0]].sort_values("step")
    series = stay[vitals_editor.channels_].iloc[:10].reset_index(drop=True)
    edited = vitals_editor.edit(series, steps=6).series["Arterial_lactate"].to_numpy()
    measured = series["Arterial_lactate"].notna().to_numpy().copy()
    measured[0] = True
    for i in range(1, 10):  # an unmeasured step carries the edited value before it
        if not measured[i]:
            assert edited[i] == edited[i - 1]


def test_loss_ignores_carried_forward_and_padded_cells(vitals_editor, small_cohort):
    data = cohort_windows(small_cohort, window=12)
    tensors = vitals_editor._train_tensors(data)
    before, _ = vitals_editor._loss(tensors, vitals_editor.model_, torch.Generator().manual_seed(0))
    imputed = tensors["avail"] * (1 - tensors["obs"])  # forward-filled cells
    padding = 1 - tensors["avail"]
    changed = dict(tensors, x=tensors["x"] + 50.0 * imputed + 80.0 * padding)
    after, _ = vitals_editor._loss(changed, vitals_editor.model_, torch.Generator().manual_seed(0))
    assert before.item() == pytest.approx(after.item(), rel=1e-6)
    assert imputed.sum() > 0 and padding.sum() > 0


def test_training_stops_early_on_held_out_realism(small_cohort):
    data = cohort_windows(small_cohort, window=12)
    cfg = TseditConfig(window=12, d_model=16, n_heads=2, n_layers=1, diffusion_steps=30,
                       train_steps=400, batch_size=32, steps_per_epoch=20, patience=2,
                       val_samples=64, val_ddim_steps=4)  # fmt: skip
    editor = DiffusionEditor(cfg).fit(data, progress=False)
    epochs = editor.history_["epochs"]
    best = editor.history_["best_epoch"]
    assert all("val" in r for r in epochs) and best is not None
    assert best >= cfg.warmup_epochs == 5  # a lucky score while warming up is never the best
    vals = [r["val"] for r in epochs]
    judged = [np.mean(vals[max(0, i - 2) : i + 1]) for i in range(len(vals))]  # smooth_epochs 3
    assert editor.history_["best_val"] == pytest.approx(min(judged[5:]))
    assert judged[best] == pytest.approx(min(judged[5:]))
    assert len(epochs) < 20 or best >= 17  # stopped, or still improving


def test_edit_many_matches_single_edits_and_takes_per_series_controls(vitals_editor, small_cohort):
    sizes = small_cohort.groupby("stay_id").size()
    ids = sizes[sizes >= 8].index[:3]
    series = [small_cohort[small_cohort.stay_id == i].sort_values("step")[vitals_editor.channels_]
              .iloc[:8].reset_index(drop=True) for i in ids]  # fmt: skip
    anchors = [[Anchor(1, "HR", 120.0)], [Anchor(2, "MeanBP", 60.0, 0.5)],
               [Anchor(3, "Arterial_lactate", 6.0, 0.3)]]  # fmt: skip
    segments = [[], [SegmentStat(0, 4, "HR", "mean", 95.0)], []]
    many = vitals_editor.edit_many(series, anchors, segments, steps=6, seed=5)
    for i in range(3):
        one = vitals_editor.edit(series[i], anchors[i], segments[i], steps=6, seed=5 + i)
        np.testing.assert_allclose(many[i].series.values, one.series.values, atol=1e-3)
    assert many[0].series["HR"][1] == 120.0
    assert many[1].series["HR"][0:4].mean() == pytest.approx(95.0, abs=1e-6)
    for i, (t, ch) in ((1, (2, "MeanBP")), (2, (3, "Arterial_lactate"))):  # soft, in a batch
        entry = many[i].report["anchors"][0]
        assert entry["pulled_fraction"] == pytest.approx(anchors[i][0].confidence, abs=1e-6)
        assert many[i].series[ch][t] == pytest.approx(entry["achieved"])
    with pytest.raises(TseditDataError, match="one entry"):
        vitals_editor.edit_many(series, anchors[:2])


def test_history_and_covariates_condition_the_edit(vitals_editor, small_cohort):
    sizes = small_cohort.groupby("stay_id").size()
    stay = small_cohort[small_cohort.stay_id == sizes[sizes >= 10].index[0]].sort_values("step")
    cols = vitals_editor.channels_ + vitals_editor.covariates_
    series = stay[cols].iloc[6:10].reset_index(drop=True)
    history = stay[cols].iloc[:6]
    plain = vitals_editor.edit(series[vitals_editor.channels_], steps=6, strength=1.0).series
    with_hist = vitals_editor.edit(series[vitals_editor.channels_], steps=6, strength=1.0,
                                   history=history).series  # fmt: skip
    with_cov = vitals_editor.edit(series, steps=6, strength=1.0).series
    assert not np.allclose(plain.values, with_hist.values)
    assert not np.allclose(plain.values, with_cov.values)
    assert vitals_editor.covariates_ == ["age", "gender", "Weight_kg", "mechvent"]
    with pytest.raises(TseditDataError, match="covariates must be"):
        vitals_editor.edit(series[vitals_editor.channels_], covariates=np.zeros((2, 4)))


@pytest.fixture(scope="module")
def co2_level_editors():
    """co2's first 80 % (levels 314-358 ppm) under the global and the window-relative level."""
    data = public_windows("co2", window=16)
    train = data.subset(np.arange(int(0.8 * len(data))))
    kw = dict(window=16, d_model=16, n_heads=2, n_layers=1, diffusion_steps=50, train_steps=150,
              batch_size=32, patience=None)  # fmt: skip
    return {lv: DiffusionEditor(TseditConfig(level=lv, **kw)).fit(train, progress=False)
            for lv in ("global", "window")}, data  # fmt: skip


def test_window_level_keeps_the_sources_level_beyond_the_training_levels(co2_level_editors):
    editors, data = co2_level_editors
    sources = data.values[-40:, :, 0]  # 365-372 ppm: above every training window
    drift = {}
    for lv, editor in editors.items():
        out = editor.edit_many(list(sources[:, :, None]), steps=10, seed=0)
        x = np.stack([r.series["co2"].to_numpy() for r in out])
        drift[lv] = np.abs(x.mean(1) - sources.mean(1)).mean()
    assert drift["window"] < 1.0 < drift["global"]  # ppm; global pulls to the training levels
    window = editors["window"]
    assert 0 < window.level_scale_[0] < 0.5  # the seasonal shape is small against the spread
    assert window.levels_.shape[1] == 1 and 500 < len(window.levels_) <= 1000  # a sample


def test_window_level_controls_exact_sampling_and_save_load(co2_level_editors, tmp_path):
    editor = co2_level_editors[0]["window"]
    src = co2_level_editors[1].values[-1]
    kw = dict(anchors=[Anchor(3, "co2", 380.0, 1.0), Anchor(9, "co2", 372.0, 0.5)],
              segments=[SegmentStat(10, 16, "co2", "mean", 375.0)], steps=6, seed=2)  # fmt: skip
    out = editor.edit(src, **kw)
    assert out.series["co2"][3] == 380.0 and out.report["hard_anchor_mae"] == 0.0
    assert out.series["co2"][10:16].mean() == pytest.approx(375.0, abs=1e-6)
    assert out.report["anchors"][1]["pulled_fraction"] == pytest.approx(0.5, abs=1e-6)
    inp = inpaint_edit(editor, src, kw["anchors"][:1], steps=6)
    assert inp.series["co2"][3] == 380.0 and abs(inp.series["co2"].mean() - src.mean()) < 5
    x = editor.sample(64, seed=0, steps=6)
    assert x.mean(1).min() > 300 and x.mean(1).max() < 362  # levels drawn from training windows
    loaded = DiffusionEditor.load(editor.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.edit(src, **kw).series.values, out.series.values)
    np.testing.assert_array_equal(loaded.sample(4, seed=1, steps=4),
                                  editor.sample(4, seed=1, steps=4))  # fmt: skip
    with pytest.raises(TseditDataError, match="'global' or 'window'"):
        DiffusionEditor(TseditConfig(window=16, level="stay")).fit(co2_level_editors[1])
