"""Offline RL baselines (d3rlpy DQN, CQL, BCQ) under the cohort estimator contract."""

from __future__ import annotations

import numpy as np
import pytest

from safer.cohorts import split_stays
from safer.errors import NotFittedError, SaferError
from safer.models.baselines.offline_rl import (
    OFFLINE_RL_MODELS,
    OfflineRLRecommender,
    make_offline_rl,
)

TINY = {"n_steps": 150, "hidden_units": 32, "batch_size": 64}


@pytest.fixture(scope="module")
def parts(small_cohort):
    splits = split_stays(small_cohort, seed=0)
    return splits.subset(small_cohort, "train"), splits.subset(small_cohort, "test")


@pytest.fixture(scope="module")
def fitted(parts):
    train, _ = parts
    return {name: make_offline_rl(name, seed=3, **TINY).fit(train, progress=False)
            for name in OFFLINE_RL_MODELS}  # fmt: skip


@pytest.mark.parametrize("name", OFFLINE_RL_MODELS)
def test_predict_proba_is_a_distribution_per_row(fitted, parts, name):
    _, test = parts
    proba = fitted[name].predict_proba(test)
    assert proba.shape == (len(test), 25)
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    kappa = fitted[name].uncertainty(test)
    assert kappa.shape == (len(test),) and np.all((kappa >= -1e-9) & (kappa <= 1 + 1e-9))
    assert fitted[name].embed(test).shape == (len(test), 32)


@pytest.mark.parametrize("name", OFFLINE_RL_MODELS)
def test_argmax_is_the_d3rlpy_greedy_action(fitted, parts, name):
    _, test = parts
    model = fitted[name]
    greedy = model.algo_.predict(model._observe(test))
    np.testing.assert_array_equal(model.predict_proba(test).argmax(axis=1), greedy)


def test_rows_do_not_depend_on_order_or_their_own_label(fitted, parts):
    _, test = parts
    model = fitted["cql"]
    base = model.predict_proba(test)
    shuffled = test.sample(frac=1.0, random_state=0)
    shuffled["action"] = -1
    again = model.predict_proba(shuffled)
    np.testing.assert_allclose(again, base[test.index.get_indexer(shuffled.index)], atol=1e-6)


@pytest.mark.parametrize("name", ["bcq", "dqn"])
def test_save_load_round_trip_is_identical(fitted, parts, tmp_path, name):
    _, test = parts
    model = fitted[name]
    model.save(tmp_path / name)
    loaded = OfflineRLRecommender.load(tmp_path / name)
    assert loaded.content_hash_ == model.content_hash_
    assert loaded.split_seed_ == model.split_seed_
    np.testing.assert_array_equal(loaded.train_stays_, model.train_stays_)
    np.testing.assert_allclose(loaded.predict_proba(test), model.predict_proba(test), atol=0)


def test_tampered_weights_are_refused(fitted, tmp_path):
    directory = fitted["dqn"].save(tmp_path / "m")
    meta = (directory / "model.json").read_text()
    (directory / "model.json").write_text(meta.replace('"temperature": 0.05', '"temperature": 1'))
    with pytest.raises(SaferError, match="content hash"):
        OfflineRLRecommender.load(directory)


def test_same_seed_same_model_and_global_rng_untouched(parts, fitted):
    train, test = parts
    state = np.random.get_state()[1].copy()
    again = make_offline_rl("cql", seed=3, **TINY).fit(train, progress=False)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    assert again.content_hash_ == fitted["cql"].content_hash_
    other = make_offline_rl("cql", seed=4, **TINY).fit(train, progress=False)
    assert other.content_hash_ != again.content_hash_


def test_contract_errors(parts):
    train, _ = parts
    with pytest.raises(NotFittedError, match="call fit first"):
        make_offline_rl("dqn").predict_proba(train)
    with pytest.raises(SaferError, match="known: dqn, cql, bcq"):
        make_offline_rl("ppo")
    with pytest.raises(SaferError, match="temperature"):
        make_offline_rl("dqn", temperature=0).fit(train, progress=False)
