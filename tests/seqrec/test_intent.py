"""The latent-intent head's core: the ELBO's KL on known Gaussians, the KL annealing, the
behaviour signals, gradient flow, and that no target signal reaches a score. The shared harness
(fit, save -> load identical, seeded, the target hidden) runs it in ``test_rl_heads.py``."""

from __future__ import annotations

import dataclasses
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import torch

from safer.errors import SaferError
from safer.seqrec import SequenceData, leave_one_out, make_model, read_item_genres
from safer.seqrec.encoders import GRU4RecConfig, GRU4RecNet
from safer.seqrec.heads import Encoded, IntentHead
from safer.seqrec.heads.intent import SIGNALS, behaviour_signals, gaussian_kl, kl_weight
from safer.seqrec.protocol import training_part

from .test_recommender import TINY


@pytest.fixture(scope="module")
def data(synthetic_inter) -> SequenceData:
    genres = {f"i{i}": [f"g{i % 5}", f"g{(i * 7) % 11}"] for i in range(40)}
    return SequenceData.read(synthetic_inter).with_genres(genres)


def tiny_head(n_items: int = 9, **options) -> tuple[IntentHead, GRU4RecNet]:
    cfg = GRU4RecConfig(embedding_size=8, hidden_size=8, head_options=options)
    torch.manual_seed(0)
    return IntentHead(n_items, 8, cfg), GRU4RecNet(n_items, cfg)


def prepared_batch(head: IntentHead, data: SequenceData):
    """A prefix batch of the training examples of ``data`` and the head prepared on it."""
    head.prepare(training_part(data))
    train = leave_one_out(data, 6)["train"]
    batch = {k: torch.as_tensor(v) for k, v in vars(train).items()}
    return train, batch


# ------------------------------------------------------------------------------ the ELBO
def test_kl_is_the_closed_form_on_known_gaussians():
    z = torch.zeros(1, 1)
    # N(0, e) against N(0, 1): (e - 1 - 1) / 2
    assert gaussian_kl(z, z + 1.0, z, z).item() == pytest.approx((np.e - 2) / 2)
    # N(2, 1) against N(0, 4): (1/4 + 4/4 - 1 - log(1/4)) / 2
    expected = 0.5 * (0.25 + 1.0 - 1.0 - np.log(0.25))
    assert gaussian_kl(z + 2.0, z, z, z + np.log(4.0)).item() == pytest.approx(expected)
    assert gaussian_kl(z + 3.0, z - 1.0, z + 3.0, z - 1.0).item() == 0.0
    torch.manual_seed(0)
    mu_q, lv_q, mu_p, lv_p = (torch.randn(6, 4) for _ in range(4))
    q = torch.distributions.Normal(mu_q, torch.exp(0.5 * lv_q))
    p = torch.distributions.Normal(mu_p, torch.exp(0.5 * lv_p))
    reference = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu_q, lv_q, mu_p, lv_p), reference)


def test_kl_weight_rises_linearly_then_holds():
    assert [kl_weight(e, 5, 2.0) for e in range(7)] == [0.4, 0.8, 1.2, 1.6, 2.0, 2.0, 2.0]
    assert kl_weight(0, 0, 0.3) == 0.3  # no annealing


def test_the_loss_weights_the_kl_by_the_epochs_annealed_weight(data):
    head, encoder = tiny_head(data.n_items, anneal_epochs=4, kl_weight=2.0)
    train, batch = prepared_batch(head, data)
    states = encoder(batch["item_seq"], batch["time_seq"], batch["seq_len"])
    where = torch.zeros(batch["item_seq"].shape, dtype=torch.bool)
    where[torch.arange(len(states)), batch["seq_len"] - 1] = True
    encoded = Encoded(states, batch["target"], states[:, None], where, batch)
    losses = []
    for epoch in (0, 1, 9):
        head.begin_epoch(epoch)
        losses.append(head.loss(encoder, encoded, torch.Generator().manual_seed(0)))
    index = head._offsets[batch["user"]] + batch["position"]
    _, kl = head.elbo_terms(states, head._signals[index], torch.Generator().manual_seed(0))
    torch.testing.assert_close(losses[1] - losses[0], 0.5 * kl.mean())  # 1.0 - 0.5
    torch.testing.assert_close(losses[2] - losses[0], 1.5 * kl.mean())  # 2.0 - 0.5


def test_the_reinforce_term_weights_each_targets_cross_entropy_by_its_rating_advantage(data):
    from safer.seqrec.heads.softmax import next_item_cross_entropy

    losses = []
    for weight in (0.0, 0.5):
        head, encoder = tiny_head(data.n_items, reinforce_weight=weight)
        train, batch = prepared_batch(head, data)
        states = encoder(batch["item_seq"], batch["time_seq"], batch["seq_len"])
        where = torch.zeros(batch["item_seq"].shape, dtype=torch.bool)
        where[torch.arange(len(states)), batch["seq_len"] - 1] = True
        encoded = Encoded(states, batch["target"], states[:, None], where, batch)
        losses.append(head.loss(encoder, encoded, torch.Generator().manual_seed(0)))
    ratings = np.array(
        [data.ratings[u][p] for u, p in zip(train.user, train.position, strict=True)]
    )
    reward = torch.as_tensor((ratings - head.signal_mean[0].item()) / head.signal_std[0].item())
    ce = next_item_cross_entropy(
        head.condition(states), batch["target"], encoder.item_embedding.weight, False, 0,
        torch.Generator(),
    )  # fmt: skip
    expected = 0.5 * ((reward - reward.mean()).float() * ce).mean()
    torch.testing.assert_close(losses[1] - losses[0], expected, rtol=1e-4, atol=1e-5)


def test_shapes_and_gradients_reach_every_network(data):
    head, encoder = tiny_head(data.n_items)
    train, batch = prepared_batch(head, data)
    hidden = encoder.encode(encoder.embed_items(batch["item_seq"]), batch["item_seq"] != 0)
    last = batch["seq_len"] - 1
    states = hidden[torch.arange(len(last)), last]
    where = torch.zeros(batch["item_seq"].shape, dtype=torch.bool)
    where[torch.arange(len(last)), last] = True
    mu, logvar = head.prior(states)
    assert mu.shape == logvar.shape == (len(train), 8)
    assert head.score(encoder, states).shape == (len(train), data.n_items + 1)
    loss = head.loss(encoder, Encoded(states, batch["target"], hidden, where, batch),
                     torch.Generator().manual_seed(0))  # fmt: skip
    loss.backward()
    for name in ("prior_net", "posterior_net", "decoder", "fuse"):
        grads = [p.grad for p in getattr(head, name).parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name
    assert encoder.item_embedding.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("stop_gradient", [True, False])
def test_the_next_item_loss_reaches_the_prior_only_without_the_stop_gradient(stop_gradient):
    head, encoder = tiny_head(stop_gradient=stop_gradient)
    # the fuse network's last layer starts at zero: give it weights so z has a path to scores
    torch.nn.init.normal_(head.fuse[2].weight)
    states = torch.randn(4, 8)
    head.score(encoder, states)[:, 1:].logsumexp(1).sum().backward()
    grads = [p.grad for p in head.prior_net.parameters()]
    touched = any(g is not None and g.abs().sum() > 0 for g in grads)
    assert touched is not stop_gradient


@pytest.mark.parametrize("elbo_to_encoder", [True, False])
def test_the_elbo_reaches_the_encoder_states_only_when_asked(data, elbo_to_encoder):
    head, encoder = tiny_head(data.n_items, elbo_to_encoder=elbo_to_encoder)
    train, batch = prepared_batch(head, data)
    states = torch.randn(len(train), 8, requires_grad=True)
    where = torch.zeros(batch["item_seq"].shape, dtype=torch.bool)
    where[torch.arange(len(train)), batch["seq_len"] - 1] = True
    encoded = Encoded(states, batch["target"], states[:, None], where, batch)
    with mock.patch("safer.seqrec.heads.intent.next_item_cross_entropy") as ce:  # ELBO only
        ce.return_value = torch.zeros(len(train))
        head.loss(encoder, encoded, torch.Generator().manual_seed(0)).backward()
    reached = states.grad is not None and bool(states.grad.abs().sum() > 0)
    assert reached is elbo_to_encoder


def test_a_new_head_scores_as_its_backbone():
    head, encoder = tiny_head()
    states = torch.randn(3, 8)
    backbone = states @ encoder.item_embedding.weight.T
    torch.testing.assert_close(head.score(encoder, states), backbone)


def test_options_are_checked(data):
    with pytest.raises(SaferError, match="latent_dim"):
        tiny_head(latent_dim=0)
    with pytest.raises(SaferError, match="must be >= 0"):
        tiny_head(kl_weight=-1.0)
    with pytest.raises(SaferError, match=r"unknown config fields \['beta'\]"):
        make_model("gru4rec", head="intent", head_options={"beta": 1.0}).fit(data)


# ------------------------------------------------------------------------- the signals
def test_behaviour_signals_of_a_known_user():
    log = pd.DataFrame(
        {
            "user": ["u"] * 4,
            "item": ["a", "b", "c", "a"],
            "timestamp": [0.0, 3600.0, 3600.0, 3 * 3600.0],
            "rating": [4.0, 2.0, 5.0, 1.0],
        }
    )
    genres = {"a": ["X"], "b": ["X", "Y"], "c": ["Y"]}
    data = SequenceData.from_interactions(log).with_genres(genres)
    s = behaviour_signals(data, novelty_window=0)[0]
    assert list(SIGNALS) == ["rating", "log_gap", "genre_novelty", "position"]
    np.testing.assert_allclose(s[:, 0], [4, 2, 5, 1])
    np.testing.assert_allclose(s[:, 1], np.log1p([0, 1, 0, 2]))
    np.testing.assert_allclose(s[:, 2], [1, 1, 0, 0])  # b brings Y; c and a bring nothing new
    np.testing.assert_allclose(s[:, 3], np.log1p([0, 1, 2, 3]))
    # window 1: only the previous item counts; a after c (Y) brings X again
    np.testing.assert_allclose(behaviour_signals(data, 1)[0][:, 2], [1, 1, 0, 1])
    # without genres: the item itself is new or not; without ratings: 0
    plain = SequenceData.from_interactions(log.drop(columns="rating"))
    s = behaviour_signals(plain, 0)[0]
    np.testing.assert_allclose(s[:, [0, 2]], [[0, 1], [0, 1], [0, 1], [0, 0]])


def test_the_head_reads_the_targets_signals_in_both_trainings(data):
    """The ELBO of each training target gets that target's standardised signals."""
    raw = behaviour_signals(training_part(data), 10)
    for training in ("prefix", "sequence"):
        model = make_model("gru4rec", head="intent", training=training, epochs=1, max_len=6,
                           **TINY["gru4rec"])  # fmt: skip
        with mock.patch.object(
            IntentHead, "elbo_terms", autospec=True, side_effect=IntentHead.elbo_terms
        ) as spy, mock.patch.object(
            IntentHead, "loss", autospec=True, side_effect=IntentHead.loss
        ) as loss_spy:  # fmt: skip
            model.fit(data)
        head, _, signals, _ = spy.call_args.args
        batch, where = loss_spy.call_args.args[2].batch, loss_spy.call_args.args[2].where
        if training == "sequence":
            rows, slot = where.nonzero(as_tuple=True)
            users, positions = batch["user"][rows], batch["start"][rows] + slot + 1
        else:
            users, positions = batch["user"], batch["position"]
        expected = np.stack([raw[u][p] for u, p in zip(users.tolist(), positions.tolist(),
                                                      strict=True)])  # fmt: skip
        expected = head.standardise(torch.as_tensor(expected, dtype=torch.float32))
        torch.testing.assert_close(signals, expected)


def test_no_signal_of_the_target_reaches_a_score(data):
    """Changing each user's test item, its rating and its time leaves the test scores equal."""
    model = make_model("sasrec", head="intent", epochs=2, max_len=10, **TINY["sasrec"]).fit(data)
    test = leave_one_out(data, 10)["test"]
    shifted = dataclasses.replace(
        data,
        sequences=tuple(np.r_[s[:-1], s[-1] % data.n_items + 1] for s in data.sequences),
        ratings=tuple(np.r_[r[:-1], 6.0 - r[-1]] for r in data.ratings),
        times=tuple(np.r_[t[:-1], t[-1] + 86_400.0] for t in data.times),
    )
    test_shifted = leave_one_out(shifted, 10)["test"]
    assert (test_shifted.target != test.target).all()
    np.testing.assert_array_equal(model.score(test_shifted), model.score(test))


# ---------------------------------------------------------------------------- the data
def test_ratings_and_genres_are_read_and_cut_with_the_training_part(tmp_path, synthetic_inter):
    inter = tmp_path / "toy.inter"
    inter.write_text(synthetic_inter.read_text())
    (tmp_path / "toy.item").write_text(
        "item_id:token\tclass:token_seq\n" + "".join(f"i{i}\tA{i % 3} B\n" for i in range(40))
    )
    data = SequenceData.read(inter)
    assert data.genres == ("A0", "A1", "A2", "B")
    assert data.item_genres.shape == (data.n_items + 1, 4) and not data.item_genres[0].any()
    token = data.item_tokens[0]
    assert data.item_genres[1].tolist() == [f"A{int(token[1:]) % 3}" == g or g == "B"
                                            for g in data.genres]  # fmt: skip
    assert read_item_genres(tmp_path / "toy.item")["i4"] == ["A1", "B"]
    assert [len(r) for r in data.ratings] == [len(s) for s in data.sequences]
    cut = training_part(data)
    assert [len(r) for r in cut.ratings] == [len(s) for s in cut.sequences]
    assert SequenceData.read(synthetic_inter).item_genres is None  # no .item file beside it
