"""MLLM-MSR (text only) on a tiny random Llama (tests/seqrec/tiny_lm.py): the candidate task, the
paper's metrics, the recurrent summaries, the LoRA yes / no classifier, its artifact, SASRec on
the same candidates and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from safer.cli import app
from safer.errors import NotFittedError, SaferError
from safer.seqrec import (
    MLLMMSR,
    MLLMMSRConfig,
    SequenceData,
    backbone_scores,
    candidate_metrics,
    candidate_task,
    make_model,
)
from safer.seqrec.adapters.mllm_msr import history_blocks
from tests.seqrec.tiny_lm import WORDS, tiny_causal_lm, write_ring_files


def toy(n_users: int = 60, seed: int = 0) -> tuple[SequenceData, tuple[str, ...]]:
    """40 items: 0-9 titled "glove <letter>", 10-39 "lens <letter>"; every user browses 4-6
    "lens" items and ends on a "glove" item, so the next item's title alone tells yes from no."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        seq = [10 + int(x) for x in rng.choice(30, int(rng.integers(4, 7)), replace=False)]
        seq.append(int(rng.integers(10)))
        users += [f"u{u}"] * len(seq)
        items += [f"i{x}" for x in seq]
        times += range(len(seq))
    data = SequenceData.from_interactions(
        pd.DataFrame({"user": users, "item": items, "timestamp": times})
    )
    titles = tuple(
        f"{'glove' if int(t[1:]) < 10 else 'lens'} {WORDS[int(t[1:]) % 7]}"
        for t in data.item_tokens
    )
    return data, titles


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("mllm")
    return {"lm": str(tiny_causal_lm(root / "lm")), "cache_dir": str(root / "cache")}


@pytest.fixture(scope="module")
def data():
    return toy()


def make(folders, **overrides) -> MLLMMSR:
    settings = dict(
        train_users=40, test_users=20, n_negatives=5, block_size=2, max_blocks=2,
        summary_tokens=3, epochs=4, batch_size=8, learning_rate=3e-2, train_negatives=2,
        lora_r=4, **folders,
    )  # fmt: skip
    return MLLMMSR(MLLMMSRConfig(**{**settings, **overrides}))


@pytest.fixture(scope="module")
def fitted(folders, data):
    model = make(folders)
    task = model.make_task(*data)
    return model.fit(task), task


# -------------------------------------------------------------------------------- task
def test_candidates_are_the_last_item_and_unseen_distinct_negatives(data):
    seqs, titles = data
    task = candidate_task(seqs, titles, train_users=30, test_users=25, n_negatives=8, seed=3)
    assert task.candidates.shape == (55, 9)
    assert (task.splits == "train").sum() == 30 and (task.splits == "test").sum() == 25
    assert len(set(task.rows.tolist())) == 55
    for i, row in enumerate(task.rows):
        seq = seqs.sequences[row]
        assert task.targets[i] == seq[-1] and task.histories[i].tolist() == seq[:-1].tolist()
        negatives = np.delete(task.candidates[i], task.positive[i])
        assert len(set(negatives.tolist())) == 8 and not set(negatives.tolist()) & set(seq.tolist())
    again = candidate_task(seqs, titles, train_users=30, test_users=25, n_negatives=8, seed=3)
    assert (again.candidates == task.candidates).all()
    assert len(set(task.positive.tolist())) > 1  # the positive's column is shuffled


def test_a_task_larger_than_the_data_is_refused_with_the_count(data):
    with pytest.raises(SaferError, match="60 users have at least 2 interactions"):
        candidate_task(*data, train_users=50, test_users=20)
    with pytest.raises(SaferError, match="one per item"):
        candidate_task(data[0], ("a",), train_users=1, test_users=1)


def test_candidate_metrics_follow_the_positive_rank_and_count_ties_half():
    positive = np.array([2, 0])
    perfect = np.array([[0.1, 0.2, 0.9], [0.8, 0.1, 0.3]])
    m = candidate_metrics(perfect, positive, k=1)
    assert m == {"auc": 1.0, "user_auc": 1.0, "hr@1": 1.0, "ndcg@1": 1.0}
    worst = candidate_metrics(-perfect, positive, k=2)
    assert worst["auc"] == 0.0 and worst["user_auc"] == 0.0 and worst["hr@2"] == 0.0
    flat = candidate_metrics(np.zeros((2, 3)), positive, k=3)
    assert flat["user_auc"] == 0.5 and flat["auc"] == 0.5 and flat["hr@3"] == 1.0
    second = candidate_metrics(np.array([[0.5, 0.1, 0.4]]), np.array([2]), k=5)
    assert second["ndcg@5"] == pytest.approx(1 / np.log2(3)) and second["user_auc"] == 0.5


def test_history_blocks_keep_the_most_recent_items_oldest_first():
    assert [b.tolist() for b in history_blocks(np.arange(1, 8), 2, 2)] == [[4, 5], [6, 7]]
    assert [b.tolist() for b in history_blocks(np.array([9]), 3, 3)] == [[9]]


# --------------------------------------------------------------------------- summaries
def test_summaries_are_recurrent_over_the_blocks_and_cached(folders, data, tmp_path):
    model = make(folders, cache_dir=str(tmp_path / "gen"))
    model._build()
    task = model.make_task(*data)
    index = task.index("test")[:3]
    got = model.summaries(task, index)
    lm = model.lm_
    for j, i in enumerate(index):
        previous = None
        for block in history_blocks(task.histories[i], 2, 2):
            prompt = lm.chat(model.summary_prompt(task, block, previous))
            fresh = tmp_path / "manual"
            previous = lm.generate([prompt], 3, no_repeat_ngram=3, cache_dir=fresh)[0] or previous
        assert got[j] == (previous or "unknown")
    n_blocks = sum(len(history_blocks(task.histories[i], 2, 2)) for i in index)
    assert len(list((tmp_path / "gen").glob("*.json"))) == n_blocks


def test_summaries_are_written_without_the_lora_layers(fitted, tmp_path):
    model, task = fitted
    index = task.index("test")[:4]
    untuned = make({"lm": model.config.lm, "cache_dir": str(tmp_path / "fresh")})
    untuned._build()
    model.config.cache_dir, saved = str(tmp_path / "other"), model.config.cache_dir
    try:
        assert model.summaries(task, index) == untuned.summaries(task, index)
    finally:
        model.config.cache_dir = saved


# -------------------------------------------------------------------------- classifier
def test_lora_learns_what_the_next_item_looks_like_and_leaves_the_lm_frozen(fitted, folders):
    # a "glove" title marks the next item; about a quarter of the negatives are gloves too, so
    # the title alone reaches a per-user AUC of about 0.87
    model, task = fitted
    base = {n: p.detach().clone() for n, p in _fresh_lm(folders).named_parameters()}
    losses = [e["train"] for e in model.history_["epochs"]]
    assert losses[-1] < losses[0]
    result = model.evaluate(task)
    assert result["n_users"] == 20 and result["n_candidates"] == 6
    untuned = make(folders, learning_rate=0.0, epochs=1).fit(task).evaluate(task)  # LoRA B = 0
    assert result["user_auc"] > 0.7 and result["user_auc"] > untuned["user_auc"] + 0.3
    assert result["auc"] > untuned["auc"] + 0.3 and result["ndcg@5"] > untuned["ndcg@5"]
    tuned = dict(model.lm_.model.named_parameters())
    for name, weight in base.items():  # peft keeps the frozen weight under base_layer
        key = name if name in tuned else name.replace(".weight", ".base_layer.weight")
        assert torch.equal(tuned[key], weight), name
    assert all(".lora_" in n for n, p in tuned.items() if p.requires_grad)


def _fresh_lm(folders):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folders["lm"])


def test_scores_are_the_shared_prompt_yes_no_of_each_candidate(fitted):
    from safer.seqrec.lm import yes_no_logits

    model, task = fitted
    scores = model.score(task)
    i = task.index("test")[0]
    summary = model.summaries(task, np.array([i]))[0]
    texts = [model.answer(task, int(x)) for x in task.candidates[i]]
    with torch.no_grad():
        direct = yes_no_logits(
            model.lm_.model, model.lm_.tokenizer, [model.question(summary)] * len(texts), texts
        )
    np.testing.assert_allclose(scores[0], direct.numpy(), rtol=1e-4, atol=1e-4)


def test_save_load_gives_the_same_scores_and_needs_the_same_lm(fitted, tmp_path):
    model, task = fitted
    model.save(tmp_path / "m")
    loaded = MLLMMSR.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.score(task), model.score(task), rtol=1e-5, atol=1e-5)
    assert loaded.content_hash_ == model.content_hash_
    other = tiny_causal_lm(tmp_path / "wide", width=32)
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["config"]["lm"] = str(other)
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(SaferError, match="not the one this MLLM-MSR was tuned from"):
        MLLMMSR.load(tmp_path / "m")


def test_the_same_seed_tunes_the_same_model(folders, data):
    a, b = (make(folders, epochs=1, train_users=10, test_users=5) for _ in range(2))
    task = a.make_task(*data)
    assert a.fit(task).content_hash_ == b.fit(task).content_hash_


def test_scoring_before_fit_says_call_fit_first(folders, data):
    model = make(folders)
    with pytest.raises(NotFittedError, match="call fit first"):
        model.score(model.make_task(*data))


# ---------------------------------------------------------------------------- backbone
def test_sasrec_is_scored_on_the_same_candidates(data):
    seqs, titles = data
    task = candidate_task(seqs, titles, train_users=10, test_users=15, n_negatives=5)
    sasrec = make_model("sasrec", epochs=1, hidden_size=8, n_layers=1, n_heads=1, max_len=8)
    sasrec.fit(seqs)
    got = backbone_scores(sasrec, seqs, task)
    from safer.seqrec import leave_one_out

    full = sasrec.score(leave_one_out(seqs, 8)["test"])  # every user, in data order
    test = task.index("test")
    np.testing.assert_allclose(got, full[task.rows[test][:, None], task.candidates[test]],
                               rtol=1e-5)  # fmt: skip
    other = make_model("pop").fit(toy(seed=9)[0])
    other.item_tokens_ = ("zz",)
    with pytest.raises(SaferError, match="another item vocabulary"):
        backbone_scores(other, seqs, task)


# --------------------------------------------------------------------------------- CLI
def test_cli_trains_saves_and_evaluates_with_a_backbone(folders, tmp_path):
    from tests.seqrec.tiny_lm import ring_walks

    walks, titles = ring_walks(40, 8)
    folder = tmp_path / "walks"
    folder.mkdir()
    sequences, _ = write_ring_files(walks, titles, folder)
    runner = CliRunner()
    out = tmp_path / "m"
    result = runner.invoke(app, [
        "seqrec", "mllm-msr", "train", "--data", str(folder), "--out", str(out),
        "--train-users", "8", "--test-users", "6", "--lm", folders["lm"], "--json",
        "--option", "n_negatives=4", "--option", "summary_tokens=2",
        "--option", f"cache_dir={folders['cache_dir']}",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["test_n_users"] == 6 and 0 <= summary["test_auc"] <= 1
    sasrec = tmp_path / "sasrec"
    result = runner.invoke(app, [
        "seqrec", "train", "--data", str(sequences), "--model", "sasrec", "--epochs", "1",
        "--out", str(sasrec), "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [
        "seqrec", "mllm-msr", "evaluate", "--model", str(out), "--data", str(folder),
        "--backbone", str(sasrec), "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["mllm-msr"]["auc"] == pytest.approx(summary["test_auc"], abs=1e-6)
    assert set(metrics["backbone"]) == {"auc", "user_auc", "hr@5", "ndcg@5"}
