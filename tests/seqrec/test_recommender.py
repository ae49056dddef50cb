"""Shared harness: every model fits, scores, round-trips through save/load with its content
hash, is seeded, never sees the item it must predict; and the artifact contract."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from safer._learnable import ArtifactError
from safer.errors import NotFittedError, SaferError
from safer.seqrec import (
    MODELS,
    NeuralRecommender,
    SequenceData,
    SequentialRecommender,
    UnknownNameError,
    leave_one_out,
    load_model,
    make_model,
    read_interactions,
)

TINY = {
    "pop": {},
    "sasrec": {"n_layers": 1, "hidden_size": 32, "inner_size": 64},
    "gru4rec": {"embedding_size": 32, "hidden_size": 32},
    "hstu": {"n_layers": 1, "hidden_size": 32, "attention_dim": 16},
    "fuxi": {"n_layers": 1, "hidden_size": 32, "attention_dim": 16, "ffn_size": 64},
}
TRAIN = {"epochs": 3, "batch_size": 256, "max_len": 20, "seed": 7}
NETS = ["sasrec", "gru4rec", "hstu", "fuxi"]
TEXT_TUNED = ["text-ft", "text-lora", "text-adapter"]
SAVED_V0_1_0 = Path(__file__).parent / "data" / "saved_v0_1_0"


@pytest.fixture(scope="module", autouse=True)
def _iisan_reads_titles(tmp_path_factory, synthetic_inter):
    """IISAN joins the harness over item titles (two words per ring item) and a tiny random
    BERT standing in for MiniLM (tests/seqrec/tiny_lm.py)."""
    from tests.seqrec.tiny_lm import WORDS, tiny_encoder

    root = tmp_path_factory.mktemp("iisan-harness")
    items = read_interactions(synthetic_inter)["item"].unique()
    titles = root / "items.tsv"
    titles.write_text(
        "".join(f"{t}\t{WORDS[int(t[1:]) % 12]} {WORDS[int(t[1:]) // 12 + 12]}\n" for t in items)
    )
    encoder = tiny_encoder(root / "encoder")
    TINY["iisan"] = {
        **TINY["sasrec"], "titles": str(titles), "encoders": [str(encoder)],
        "cache_dir": str(root / "cache"), "adapter_size": 8,
    }  # fmt: skip
    for name in TEXT_TUNED:  # IISAN's baselines: the same tiny BERT, tuned end to end
        TINY[name] = {
            **TINY["sasrec"], "titles": str(titles), "encoder": str(encoder),
            "adapter_size": 8, "lora_r": 2, "max_text_len": 4,
        }  # fmt: skip
    yield
    for name in ("iisan", *TEXT_TUNED):
        del TINY[name]


def tiny(name: str, **extra) -> SequentialRecommender:
    params = {**TINY[name], **({} if name == "pop" else TRAIN), **extra}
    return make_model(name, **params)


@pytest.fixture(scope="module")
def data(synthetic_inter) -> SequenceData:
    return SequenceData.read(synthetic_inter)


@pytest.fixture(scope="module")
def fitted(data) -> dict[str, SequentialRecommender]:
    return {name: tiny(name).fit(data) for name in MODELS}


@pytest.mark.parametrize("name", list(MODELS))
def test_score_before_fit_says_call_fit_first(name, data):
    test = leave_one_out(data, 20)["test"]
    with pytest.raises(NotFittedError, match="call fit first"):
        tiny(name).score(test)


@pytest.mark.parametrize("name", list(MODELS))
def test_fit_score_and_evaluate(name, fitted, data):
    model = fitted[name]
    test = leave_one_out(data, 20)["test"]
    scores = model.score(test)
    assert scores.shape == (len(test), data.n_items + 1)
    assert np.isfinite(scores[:, 1:]).all()
    result = model.evaluate(data, "test")
    assert set(result) == {"hr@10", "ndcg@10", "mrr@10", "recall@10", "protocol", "n_users"}
    assert result["n_users"] == len(data.users)
    assert 0.0 <= result["mrr@10"] <= result["ndcg@10"] <= result["hr@10"] <= 1.0


@pytest.mark.parametrize("name", list(MODELS))
def test_save_load_gives_identical_scores_and_hash(name, fitted, data, tmp_path):
    model = fitted[name]
    model.save(tmp_path / name)
    saved = json.loads((tmp_path / name / "model.json").read_text())
    assert saved["model"] == name and saved["item_tokens"] == list(data.item_tokens)
    loaded = SequentialRecommender.load(tmp_path / name)
    assert type(loaded) is type(model) is MODELS[name]
    assert dataclasses.asdict(loaded.config) == dataclasses.asdict(model.config)
    assert loaded.content_hash_ == model.content_hash_ == saved["content_hash"]
    test = leave_one_out(data, 20)["test"]
    np.testing.assert_array_equal(loaded.score(test), model.score(test))


@pytest.mark.parametrize("name", ["pop", "sasrec"])
def test_tampered_weights_or_metadata_are_refused(name, fitted, tmp_path):
    folder = fitted[name].save(tmp_path / name)
    state = torch.load(folder / "weights.pt", weights_only=True)
    key = next(iter(state))
    state[key] = state[key] + 1.0
    torch.save(state, folder / "weights.pt")
    with pytest.raises(ArtifactError, match="content hash"):
        SequentialRecommender.load(folder)
    folder = fitted[name].save(tmp_path / f"{name}-meta")
    meta = json.loads((folder / "model.json").read_text())
    meta["item_tokens"] = meta["item_tokens"][::-1]
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="content hash"):
        load_model(folder)


def test_a_model_of_another_kind_is_refused(fitted, tmp_path):
    folder = fitted["gru4rec"].save(tmp_path / "gru4rec")
    with pytest.raises(ArtifactError, match="'gru4rec' model, not a 'sasrec'"):
        MODELS["sasrec"].load(folder)


@pytest.mark.parametrize("name", ["pop", "sasrec", "hstu"])
def test_a_model_saved_by_the_previous_version_loads_and_scores_as_it_did(name, synthetic_inter):
    """Folders written by safer 0.1.0 (seqrec.json, encoder weights alone, no content hash) with
    the test metrics that version computed for them (tests/seqrec/data/README.md)."""
    expected = json.loads((SAVED_V0_1_0 / "expected.json").read_text())[name]
    model = SequentialRecommender.load(SAVED_V0_1_0 / name)
    assert type(model) is MODELS[name] and model.is_fitted
    data = SequenceData.from_interactions(
        read_interactions(synthetic_inter), item_tokens=model.item_tokens_
    )
    assert model.evaluate(data, "test") == expected
    if name != "pop":  # its per-epoch history now reads like a new one
        assert model.history_["epochs"][-1]["train"] > 0
        assert model.history_["best_epoch"] in (0, 1)


def test_load_rejects_a_non_model_directory(tmp_path):
    with pytest.raises(ArtifactError, match="safer seqrec train"):
        SequentialRecommender.load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"model": "SaferRecommender"}))
    with pytest.raises(ArtifactError, match="known: pop, sasrec"):
        load_model(tmp_path)


def test_unknown_model_or_config_field_says_what_is_known():
    with pytest.raises(UnknownNameError, match="known: pop, sasrec, gru4rec, hstu, fuxi"):
        make_model("bert")
    with pytest.raises(SaferError, match=r"unknown config fields \['n_layer'\]; SASRecConfig has"):
        make_model("sasrec", n_layer=1)
    with pytest.raises(SaferError, match="needs an encoder"):
        NeuralRecommender().fit(SequenceData((), (), (), ()))


@pytest.mark.parametrize("name", NETS)
def test_same_seed_same_model(name, data):
    test = leave_one_out(data, 20)["test"]
    first, again, other = (tiny(name, epochs=1, seed=s).fit(data) for s in (7, 7, 8))
    np.testing.assert_array_equal(again.score(test), first.score(test))
    assert again.content_hash_ == first.content_hash_ != other.content_hash_
    assert not np.array_equal(other.score(test), first.score(test))


def test_fit_leaves_the_callers_random_stream_alone(data):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    tiny("hstu", epochs=1, protocol="hstu").fit(data)
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)


def test_fit_network_runs_another_training_loop_and_finishes_the_model_as_fit_does(data):
    """The hook other trainers (safer.seqrec.distill) use: the model builds the network in its
    seeded context, the loop trains it with the model's own scoring, the model is fitted."""
    valid = leave_one_out(data, 20)["valid"]
    seen = {}

    def one_sgd_step(net, score):
        seen["net"], seen["untrained"] = net, score(valid)
        x = torch.as_tensor(valid.item_seq)
        loss = net.encoder.embed_items(x).pow(2).mean()
        loss.backward()
        with torch.no_grad():
            for p in net.parameters():
                if p.grad is not None:
                    p -= 0.5 * p.grad
        return {"epochs": [{"epoch": 0, "train": loss.item()}], "best_epoch": None}

    torch.manual_seed(0)
    caller = torch.rand(3)
    torch.manual_seed(0)
    model = tiny("gru4rec")
    assert model.fit_network(data, one_sgd_step) is model
    torch.testing.assert_close(torch.rand(3), caller, rtol=0, atol=0)  # stream left alone
    assert model.is_fitted and model.net_ is seen["net"] and not model.net_.training
    assert model.history_["epochs"][0]["epoch"] == 0
    assert model.item_tokens_ == data.item_tokens
    trained = torch.as_tensor(model.score(valid))
    assert not torch.equal(trained, seen["untrained"])  # the score callable saw the net as built
    again = tiny("gru4rec").fit_network(data, one_sgd_step)
    assert again.content_hash_ == model.content_hash_  # seeded: same network, same hash
    with pytest.raises(SaferError, match="needs an encoder"):
        NeuralRecommender().fit_network(data, one_sgd_step)


def test_history_records_every_epoch_and_the_best(data):
    model = tiny("sasrec", epochs=4, stopping_step=1, learning_rate=1e-2).fit(data)
    history = model.history_
    epochs = history["epochs"]
    assert 1 <= len(epochs) <= 4
    assert {"epoch", "train", "seconds", "val", "valid_mrr@10", "valid_ndcg@10"} <= set(epochs[0])
    best = max(range(len(epochs)), key=lambda i: epochs[i]["val"])
    assert history["best_epoch"] == best and history["best_val"] == epochs[best]["valid_mrr@10"]
    # the kept weights are the best epoch's: validation MRR@10 of the fitted model is the best
    assert model.evaluate(data, "valid")["mrr@10"] == pytest.approx(history["best_val"])


@pytest.mark.parametrize("name", list(MODELS))
def test_target_item_is_not_visible(name, fitted, data):
    """Changing every user's last (test) item leaves the test scores unchanged."""
    test = leave_one_out(data, 20)["test"]
    shifted = dataclasses.replace(
        data,
        sequences=tuple(
            np.r_[s[:-1], (s[-1] % data.n_items) + 1] if len(s) > 1 else s for s in data.sequences
        ),
    )
    test_shifted = leave_one_out(shifted, 20)["test"]
    assert (test_shifted.target != test.target).all()
    np.testing.assert_array_equal(fitted[name].score(test_shifted), fitted[name].score(test))


@pytest.mark.parametrize("name", NETS)
def test_sequence_models_beat_popularity(name, data):
    """On the ring data the next item follows from the last one; popularity cannot know it."""
    pop = tiny("pop").fit(data).evaluate(data, "test")
    model = tiny(name, epochs=12, learning_rate=1e-2).fit(data).evaluate(data, "test")
    assert model["ndcg@10"] > pop["ndcg@10"] + 0.2, (model, pop)


def test_hstu_protocol_filters_seen_items(data):
    model = tiny("sasrec", protocol="hstu").fit(data)
    assert model.evaluate(data, "test")["protocol"] == "hstu"
    assert model.history_["epochs"][-1]["train"] > 0
