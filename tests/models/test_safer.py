"""SAFER behaviour users rely on: no leakage, honest uncertainty, a penalty that trains."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from safer.cohorts import simulate_cohort, split_stays
from safer.errors import SaferError
from safer.models import SaferConfig, make_model
from safer.models.encoders import (
    MAX_SHARDS,
    NoteEncoder,
    _read_shard,
    _write_shard,
    compact_shards,
)
from safer.models.safer import SaferNet, kl_divergence, risk_aware_loss

LEAKY_NOTE = (
    "Plan: give IV fluid > 530 mL/4h and vasopressor > 0.45 ug/kg/min. "
    "Action 24 chosen. Max fluids, max pressors."
)


@pytest.fixture(scope="module", params=["attention", "mean"])
def full_model(request, tiny_cohort, tiny):
    """The full model with each note pathway (sentences as tokens; averaged sentences)."""
    model = make_model("safer", seed=0, note_pool=request.param, **tiny)
    return model.fit(tiny_cohort, progress=False)


def _decision_row(cohort: pd.DataFrame) -> int:
    """Index of a decision late in a long stay (has history and notes before it)."""
    longest = cohort.groupby("stay_id").size().idxmax()
    rows = cohort.index[cohort["stay_id"] == longest]
    return int(rows[len(rows) // 2])


# ----------------------------------------------------------------------------- leakage
def test_note_written_after_the_decision_cannot_change_it(full_model, tiny_cohort):
    before = full_model.predict_proba(tiny_cohort)
    leaky = tiny_cohort.copy()
    i = _decision_row(leaky)
    leaky.loc[i, "note"] = LEAKY_NOTE
    leaky.loc[i, "note_time"] = leaky.loc[i, "charttime"] + pd.Timedelta(hours=1)
    with pytest.raises(SaferError):  # validate() would reject this frame ...
        from safer.cohorts import validate

        validate(leaky)
    after = full_model.predict_proba(leaky)  # ... but the model must guard itself too
    # decision i and every earlier one are unchanged (the note may inform the NEXT decision,
    # charted 4 h later, legitimately: it was written before that one)
    stay, step = leaky.loc[i, ["stay_id", "step"]]
    upto = ~((leaky["stay_id"] == stay) & (leaky["step"] > step)).to_numpy()
    np.testing.assert_array_equal(after[upto], before[upto])
    # the same note charted before the decision is used: the check above can fail
    leaky.loc[i, "note_time"] = leaky.loc[i, "charttime"] - pd.Timedelta(minutes=30)
    assert not np.allclose(full_model.predict_proba(leaky)[i], before[i])


def test_future_rows_do_not_reach_a_decision(full_model, tiny_cohort):
    i = _decision_row(tiny_cohort)
    stay, step = tiny_cohort.loc[i, ["stay_id", "step"]]
    history = tiny_cohort[(tiny_cohort["stay_id"] == stay) & (tiny_cohort["step"] <= step)]
    shuffled = history.sample(frac=1.0, random_state=0)  # any row order
    shuffled.loc[i, "action"] = -1  # the decision's own action (the label) is not known yet
    partial = full_model.predict_proba(shuffled)
    full = full_model.predict_proba(tiny_cohort)
    where = np.flatnonzero(shuffled.index.to_numpy() == i)[0]
    np.testing.assert_allclose(partial[where], full[i], atol=1e-6)
    np.testing.assert_allclose(partial, full[shuffled.index.to_numpy()], atol=1e-6)


def test_hidden_truth_columns_are_never_read(full_model, tiny_cohort, tiny):
    scrambled = tiny_cohort.copy()
    rng = np.random.default_rng(0)
    true_cols = [c for c in scrambled.columns if c.startswith("true_")]
    assert true_cols
    for c in true_cols:
        scrambled[c] = rng.permutation(scrambled[c].to_numpy())
    np.testing.assert_array_equal(
        full_model.predict_proba(scrambled), full_model.predict_proba(tiny_cohort)
    )
    without = tiny_cohort.drop(columns=true_cols)
    pool = full_model.config.note_pool
    refit = make_model("safer", seed=0, note_pool=pool, **tiny).fit(without, progress=False)
    np.testing.assert_array_equal(
        refit.predict_proba(without), full_model.predict_proba(tiny_cohort)
    )


def test_training_records_its_stays(full_model, tiny_cohort):
    np.testing.assert_array_equal(full_model.train_stays_, np.sort(tiny_cohort["stay_id"].unique()))


# ---------------------------------------------------------------------- uncertainty
def test_penalty_has_a_gradient():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 25, generator=gen, requires_grad=True)
    surv = torch.randn(8, 25, generator=gen, requires_grad=True)
    target, weights = torch.arange(8), torch.ones(8)
    grads = []
    for gamma in (0.0, 0.2):
        logits.grad = surv.grad = None
        risk_aware_loss(logits, surv, target, weights, gamma).backward()
        grads.append((logits.grad.clone(), surv.grad.clone()))
    assert not torch.allclose(grads[0][0], grads[1][0])  # gamma * kappa^2 moves the base head
    assert grads[0][1].abs().sum() == 0 and grads[1][1].abs().sum() > 0  # and the embedding path
    assert torch.all(kl_divergence(logits, logits).abs() < 1e-6)


def test_kappa_weights_use_correct_precedence(full_model):
    assert full_model.kappa_max_ > full_model.kappa_min_ >= 0


@pytest.mark.parametrize("use_structured, use_notes", [(True, True), (False, True), (True, False)])
def test_net_shapes(use_structured, use_notes):
    net = SaferNet(
        n_struct=10, n_static=4, note_dim=6, history=3, d_model=8, n_heads=2, n_layers=1,
        dropout=0.0, use_structured=use_structured, use_notes=use_notes,
    )  # fmt: skip
    B = 5
    struct_pad = torch.zeros(B, 3, dtype=torch.bool)
    struct_pad[:, 0] = True
    note_pad = torch.ones(B, 3, dtype=torch.bool)  # no usable note at all: still defined
    logits, surv, z = net(torch.randn(B, 3, 10), struct_pad, torch.randn(B, 3, 6), note_pad,
                          torch.randn(B, 4))  # fmt: skip
    assert logits.shape == surv.shape == (B, 25) and z.shape == (B, 8)
    assert torch.isfinite(logits).all()


def test_sentence_tokens_handle_empty_and_unusable_notes():
    net = SaferNet(
        n_struct=10, n_static=4, note_dim=6, history=3, d_model=8, n_heads=2, n_layers=1,
        dropout=0.0, use_structured=True, use_notes=True, note_pool="attention",
    ).eval()  # fmt: skip
    B, gen = 4, torch.Generator().manual_seed(0)
    table = torch.randn(5, 6, generator=gen)  # 5 distinct sentences
    index = torch.full((B, 3, 2), -1)  # (B, H, S): most notes have no sentence at all
    index[0, 2] = torch.tensor([0, 1])
    index[1, 2] = torch.tensor([2, -1])
    args = (torch.randn(B, 3, 10, generator=gen), torch.zeros(B, 3, dtype=torch.bool))
    static = torch.randn(B, 4, generator=gen)
    logits, _, _ = net(*args, index, index[..., 0] < 0, static, table)
    assert torch.isfinite(logits).all()  # an all-padded sentence list must not give NaN
    # the sentences of a usable note reach the decision; swapping them changes it
    other = index.clone()
    other[0, 2] = torch.tensor([3, 4])
    changed, _, _ = net(*args, other, other[..., 0] < 0, static, table)
    assert not torch.allclose(changed[0], logits[0]) and torch.allclose(changed[1:], logits[1:])


def test_unknown_note_pool_lists_the_known_ones(tiny_cohort):
    from safer.models import SaferRecommender

    with pytest.raises(SaferError, match="attention"):
        SaferRecommender(SaferConfig(note_pool="max")).fit(tiny_cohort, progress=False)


def test_kappa_higher_for_deceased_on_held_out_stays():
    # The effect is small (held-out kappa ~2-13 % higher for deceased over seeds 0-2 at 2,000
    # stays) and not reliable at 300 stays, so this uses a 2,000-stay cohort (~10 s).
    cohort = simulate_cohort(n_stays=2000, seed=11, progress=False)
    splits = split_stays(cohort, seed=0)
    model = make_model("safer-n", seed=0, epochs=6, finetune_epochs=2)
    model.fit(splits.subset(cohort, "train"), progress=False)
    held_out = pd.concat([splits.subset(cohort, "calibration"), splits.subset(cohort, "test")])
    kappa = model.uncertainty(held_out)  # one value per decision
    died = held_out["died"].to_numpy() == 1
    assert kappa[died].mean() > kappa[~died].mean()


# ----------------------------------------------------------------------- note cache
def test_second_run_reads_the_cache(tmp_path):
    texts = ["MAP 65, levo 0.1. Plan: bolus.", "UOP adequate.", "", "MAP 65, levo 0.1."]
    first = NoteEncoder(cache_dir=tmp_path, progress=False)
    a = first.encode(texts)
    assert first.n_encoded == 3  # unique sentences, each once
    second = NoteEncoder(cache_dir=tmp_path, progress=False)
    b = second.encode(texts)
    assert second.n_encoded == 0 and second._model is None  # the transformer is not even loaded
    np.testing.assert_array_equal(a, b)
    assert np.all(a[2] == 0) and np.abs(a[0]).sum() > 0


def test_cached_texts_are_served_from_memory_and_new_ones_from_other_runs_shards(
    tmp_path, tiny_encoder, monkeypatch
):
    enc = NoteEncoder(tiny_encoder, cache_dir=tmp_path, progress=False)
    first = enc.encode(["MAP 65.", "UOP adequate."])
    scans = []
    monkeypatch.setattr(enc, "_load_cache", lambda: scans.append(1) or type(enc)._load_cache(enc))
    np.testing.assert_array_equal(enc.encode(["UOP adequate.", "MAP 65."]), first[::-1])
    assert scans == []  # a decision on cached notes does not scan the cache folder
    other = NoteEncoder(tiny_encoder, cache_dir=tmp_path, progress=False)
    new = other.encode(["Plan: bolus."])  # another run caches a new sentence
    np.testing.assert_array_equal(enc.encode(["Plan: bolus."]), new)
    assert scans == [1] and enc.n_encoded == 2  # read from the other run's shard, not encoded


def test_the_cache_stays_a_few_shards_and_keeps_every_vector(tmp_path, tiny_encoder):
    enc = NoteEncoder(tiny_encoder, cache_dir=tmp_path, progress=False)
    texts = [f"Levo at 0.{i:02d}." for i in range(MAX_SHARDS + 10)]
    vectors = np.concatenate([enc.encode([t]) for t in texts])  # one new shard per call
    folder = tmp_path / enc.identity
    assert len(list(folder.glob("*.npz"))) <= MAX_SHARDS
    fresh = NoteEncoder(tiny_encoder, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(fresh.encode(texts), vectors)
    assert fresh.n_encoded == 0  # every vector survived the merges


def test_compaction_merges_the_small_shards_and_leaves_big_and_broken_ones(tmp_path):
    big = _write_shard(tmp_path, np.array([f"b{i}" for i in range(50)]), np.ones((50, 4)))
    for i in range(6):
        _write_shard(tmp_path, np.array([f"s{i}", "b0"]), np.full((2, 4), i, np.float32))
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    assert compact_shards(tmp_path, max_shards=10) == 0  # 8 shards: nothing to do
    assert compact_shards(tmp_path, max_shards=4) == 6  # the broken one is unreadable: skipped
    left = sorted(f.name for f in tmp_path.glob("*.npz"))
    assert big in left and "broken.npz" in left and len(left) == 3
    merged = next(f for f in left if f not in (big, "broken.npz"))
    keys, values = _read_shard(tmp_path / merged)
    assert keys.tolist() == ["b0", "s0", "s1", "s2", "s3", "s4", "s5"]  # each key once
    assert values[1:, 0].tolist() == [0, 1, 2, 3, 4, 5]


def test_compaction_waits_for_nobody_when_another_process_merges(tmp_path):
    fcntl = pytest.importorskip("fcntl", reason="advisory file locks are POSIX-only")
    for i in range(5):
        _write_shard(tmp_path, np.array([f"k{i}"]), np.zeros((1, 2), np.float32))
    with open(tmp_path / ".compact.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as another process merging this folder would
        assert compact_shards(tmp_path, max_shards=4) == 0
    assert compact_shards(tmp_path, max_shards=4) == 4


def test_sentence_encoding_matches_the_averaged_note_vectors(tmp_path, tiny_encoder):
    texts = ["MAP 65. Levo at 0.09.", "", "Levo at 0.09. UOP adequate. Plan: bolus."]
    enc = NoteEncoder(tiny_encoder, cache_dir=tmp_path, progress=False)
    table, index = enc.encode_sentences(texts)
    assert table.shape == (4, enc.dim) and index.tolist() == [[0, 1, -1], [-1] * 3, [1, 2, 3]]
    averaged = enc.encode(texts)  # same sentences, same cache: nothing is encoded twice
    assert enc.n_encoded == 4
    for i in (0, 2):
        np.testing.assert_allclose(table[index[i][index[i] >= 0]].mean(0), averaged[i], rtol=1e-5)
    assert enc.encode_sentences(texts, max_sentences=2)[1].shape == (3, 2)


def test_missing_encoder_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SaferError, match="note_encoder"):
        NoteEncoder(str(tmp_path / "nope"), cache_dir=tmp_path)


def test_bad_config_is_a_safer_error(tiny_cohort):
    from safer.models import SaferRecommender

    with pytest.raises(SaferError, match="divisible"):
        SaferRecommender(SaferConfig(d_model=10, n_heads=4)).fit(tiny_cohort, progress=False)
