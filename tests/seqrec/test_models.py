"""Shared harness: every model fits, scores, round-trips through save/load, is seeded and
never sees the item it must predict."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from safer.errors import NotFittedError
from safer.seqrec import MODELS, SequenceData, SequentialRecommender, leave_one_out, make_model

TINY = {
    "pop": {},
    "sasrec": {"n_layers": 1, "hidden_size": 32, "inner_size": 64},
    "gru4rec": {"embedding_size": 32, "hidden_size": 32},
    "hstu": {"n_layers": 1, "hidden_size": 32, "attention_dim": 16},
    "fuxi": {"n_layers": 1, "hidden_size": 32, "attention_dim": 16, "ffn_size": 64},
}
TRAIN = {"epochs": 3, "batch_size": 256, "max_len": 20, "seed": 7}


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
def test_save_load_gives_identical_scores(name, fitted, data, tmp_path):
    model = fitted[name]
    model.save(tmp_path / name)
    loaded = SequentialRecommender.load(tmp_path / name)
    assert type(loaded) is type(model)
    assert dataclasses.asdict(loaded.config) == dataclasses.asdict(model.config)
    test = leave_one_out(data, 20)["test"]
    np.testing.assert_array_equal(loaded.score(test), model.score(test))


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "hstu", "fuxi"])
def test_same_seed_same_model(name, data):
    test = leave_one_out(data, 20)["test"]
    first, again, other = (tiny(name, epochs=1, seed=s).fit(data) for s in (7, 7, 8))
    np.testing.assert_array_equal(again.score(test), first.score(test))
    assert not np.array_equal(other.score(test), first.score(test))


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


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "hstu", "fuxi"])
def test_sequence_models_beat_popularity(name, data):
    """On the ring data the next item follows from the last one; popularity cannot know it."""
    pop = tiny("pop").fit(data).evaluate(data, "test")
    model = tiny(name, epochs=12, learning_rate=1e-2).fit(data).evaluate(data, "test")
    assert model["ndcg@10"] > pop["ndcg@10"] + 0.2, (model, pop)


def test_hstu_protocol_filters_seen_items(data):
    model = tiny("sasrec", protocol="hstu").fit(data)
    assert model.evaluate(data, "test")["protocol"] == "hstu"
    assert model.history_[-1]["loss"] > 0


def test_load_rejects_a_non_model_directory(tmp_path):
    from safer.seqrec import ModelDirError

    with pytest.raises(ModelDirError, match="safer seqrec train"):
        SequentialRecommender.load(tmp_path)
