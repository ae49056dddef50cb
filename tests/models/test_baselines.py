"""Shared harness for the baselines: every one at a tiny config honours the estimator contract."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from safer.cli import main
from safer.cohorts import write_cohort
from safer.errors import NotFittedError, SaferError
from safer.models import (
    BASELINES,
    MODEL_NAMES,
    SEQUENCE_BASELINES,
    VARIANTS,
    load_model,
    make_model,
)
from safer.models.baselines import BaselineRecommender
from safer.models.baselines.retain import RetainNet
from safer.models.baselines.srl_rnn import srl_loss


@pytest.fixture(scope="module")
def small(note_cache, tiny_encoder):
    """Overrides that make any baseline train in well under a second (notes included)."""
    return dict(d_model=16, history=4, epochs=2, cache_dir=note_cache, note_encoder=tiny_encoder)


def _overrides(name, small):
    return {**small, "n_heads": 2} if name == "transformer" else small


@pytest.fixture(scope="module")
def fitted(tiny_cohort, small):
    return {
        name: make_model(name, seed=0, **_overrides(name, small)).fit(tiny_cohort, progress=False)
        for name in SEQUENCE_BASELINES
    }


def test_model_names_list_variants_then_baselines():
    assert MODEL_NAMES == VARIANTS + BASELINES
    assert set(SEQUENCE_BASELINES) == {
        "lstm", "retain", "transformer", "bc-mlp", "srl-rnn", "sasrec", "hstu", "tahdnet",
    }  # fmt: skip
    assert set(BASELINES) == set(SEQUENCE_BASELINES) | {"dqn", "cql", "bcq"}


@pytest.mark.parametrize("name", SEQUENCE_BASELINES)
def test_probabilities_uncertainty_and_embedding(fitted, tiny_cohort, name):
    model = fitted[name]
    assert isinstance(model, BaselineRecommender)
    proba = model.predict_proba(tiny_cohort)
    assert proba.shape == (len(tiny_cohort), 25) and np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    entropy = model.uncertainty(tiny_cohort)
    assert entropy.shape == (len(tiny_cohort),)
    assert np.all(entropy >= 0) and np.all(entropy <= 1) and entropy.std() > 0
    assert model.embed(tiny_cohort).shape == (len(tiny_cohort), model.config.d_model)
    assert len(model.train_stays_) == tiny_cohort["stay_id"].nunique()


@pytest.mark.parametrize("name", SEQUENCE_BASELINES)
def test_rows_in_input_order_and_no_look_ahead(fitted, tiny_cohort, name):
    model = fitted[name]
    full = model.predict_proba(tiny_cohort)
    shuffled = tiny_cohort.sample(frac=1.0, random_state=0)
    np.testing.assert_allclose(
        model.predict_proba(shuffled), full[shuffled.index.to_numpy()], atol=1e-6
    )
    early = (tiny_cohort["step"] <= 2).to_numpy()  # later rows removed: earlier ones unchanged
    np.testing.assert_allclose(model.predict_proba(tiny_cohort[early]), full[early], atol=1e-6)


@pytest.mark.parametrize("name", SEQUENCE_BASELINES)
def test_save_load_gives_identical_outputs(fitted, tiny_cohort, name, tmp_path):
    model = fitted[name]
    model.save(tmp_path / name)
    assert json.loads((tmp_path / name / "model.json").read_text())["model"] == type(model).__name__
    loaded = load_model(tmp_path / name)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert loaded.content_hash_ == model.content_hash_ and len(model.content_hash_) == 64
    np.testing.assert_array_equal(
        loaded.predict_proba(tiny_cohort), model.predict_proba(tiny_cohort)
    )
    np.testing.assert_array_equal(loaded.uncertainty(tiny_cohort), model.uncertainty(tiny_cohort))
    np.testing.assert_array_equal(loaded.embed(tiny_cohort), model.embed(tiny_cohort))


@pytest.mark.parametrize("name", SEQUENCE_BASELINES)
def test_same_seed_same_model(fitted, tiny_cohort, small, name):
    again = make_model(name, seed=0, **_overrides(name, small)).fit(tiny_cohort, progress=False)
    assert again.content_hash_ == fitted[name].content_hash_
    np.testing.assert_array_equal(
        again.predict_proba(tiny_cohort), fitted[name].predict_proba(tiny_cohort)
    )


def test_another_seed_gives_another_model(fitted, tiny_cohort, small):
    other = make_model("retain", seed=1, **small).fit(tiny_cohort, progress=False)
    assert other.content_hash_ != fitted["retain"].content_hash_
    assert not np.allclose(
        other.predict_proba(tiny_cohort), fitted["retain"].predict_proba(tiny_cohort)
    )


@pytest.mark.parametrize("name", SEQUENCE_BASELINES)
def test_predict_before_fit_says_call_fit_first(tiny_cohort, name):
    model = make_model(name)
    for method in (model.predict_proba, model.uncertainty, model.embed):
        with pytest.raises(NotFittedError, match="call fit first"):
            method(tiny_cohort)
    with pytest.raises(NotFittedError, match="call fit first"):
        model.save("/nonexistent")


def test_usable_notes_change_the_recommendation(fitted, tiny_cohort):
    model = fitted["lstm"]
    has_note = tiny_cohort["note"].fillna("").str.strip().ne("")
    row = int(
        np.flatnonzero(
            has_note.to_numpy() & (tiny_cohort["note_time"] <= tiny_cohort["charttime"]).to_numpy()
        )[0]
    )
    edited = tiny_cohort.copy()
    edited.loc[edited.index[row], "note"] = (
        "Patient crashing, MAP 40, starting high-dose norepinephrine."
    )
    before = model.predict_proba(tiny_cohort)[row]
    after = model.predict_proba(edited)[row]
    assert not np.allclose(before, after)


def test_unknown_name_and_unknown_field_say_what_exists():
    with pytest.raises(SaferError) as info:
        make_model("gru")
    for name in MODEL_NAMES:
        assert name in str(info.value)
    with pytest.raises(SaferError, match="n_layers"):
        make_model("lstm", n_heads=4)
    with pytest.raises(SaferError, match="divisible"):
        make_model("transformer", d_model=10, n_heads=4).config.check()


def test_retain_attention_sums_to_one_over_present_steps():
    net = RetainNet(in_dim=6, n_static=2, d_model=8, dropout=0.0)
    x = torch.randn(3, 5, 6)
    pad = torch.tensor([[True, True, False, False, False]] * 3)
    _, alpha, beta = net.attention(x, pad)
    np.testing.assert_allclose(alpha.sum(1).detach().numpy(), 1.0, atol=1e-6)
    assert torch.all(alpha[:, :2] == 0) and torch.all(beta.abs() <= 1)


def test_srl_loss_without_rl_is_imitation_plus_critic():
    torch.manual_seed(0)
    logits, q = torch.randn(4, 25), torch.randn(4, 25)
    action, target = torch.tensor([0, 3, 7, 24]), torch.tensor([0.0, 1.0, -1.0, 0.5])
    ce = torch.nn.functional.cross_entropy(logits, action)
    mse = torch.nn.functional.mse_loss(q.gather(1, action[:, None]).squeeze(1), target)
    torch.testing.assert_close(srl_loss(logits, q, action, target, 0.0), ce + mse)
    # the actor term pushes the policy towards high-Q actions
    logits.requires_grad_(True)
    srl_loss(logits, q, action, target, 1.0).backward()
    best = q.argmax(1)
    assert torch.all(logits.grad.gather(1, best[:, None]) < 0)


def test_srl_rnn_rewards_end_each_stay_with_its_outcome(tiny_cohort, small):
    from safer.models._windows import build_windows

    model = make_model("srl-rnn", **small)
    windows = build_windows(tiny_cohort, 4, need_notes=False)
    data = {}
    model._add_episode_info(data, tiny_cohort, windows)
    stay = tiny_cohort["stay_id"].to_numpy()[windows.order]
    died = tiny_cohort["died"].to_numpy()[windows.order]
    last = np.append(stay[1:] != stay[:-1], True)
    reward = data["reward"].numpy()
    assert np.all(reward[~last] == 0) and np.all(data["next"].numpy()[last] == -1)
    np.testing.assert_array_equal(reward[last], np.where(died[last] == 1, -1.0, 1.0))


def test_safer_train_accepts_a_baseline(tiny_cohort, tmp_path, capsys, monkeypatch, tiny_encoder,
                                        note_cache):  # fmt: skip
    monkeypatch.setenv("SAFER_CACHE_DIR", note_cache)
    path = tmp_path / "cohort.parquet"
    write_cohort(tiny_cohort, path)
    with pytest.raises(SystemExit) as info:
        main(["train", "--cohort", str(path), "--variant", "bc-mlp", "--out",
              str(tmp_path / "m"), "--epochs", "1", "--d-model", "16", "--note-encoder",
              tiny_encoder, "--json"])  # fmt: skip
    assert info.value.code in (0, None)
    summary = json.loads(capsys.readouterr().out)
    assert summary["variant"] == "bc-mlp"
    assert type(load_model(tmp_path / "m")).__name__ == "BCMLPRecommender"
