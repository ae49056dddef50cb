"""Heads: the registry, the next-item softmax, and what the recommender hands a head."""

from __future__ import annotations

from unittest import mock

import pytest
import torch

from safer._registry import UnknownNameError
from safer.errors import SaferError
from safer.seqrec import SequenceData, make_model
from safer.seqrec.encoders import SASRecConfig, SASRecNet
from safer.seqrec.heads import HEADS, Encoded, SoftmaxHead


def encoded(states: torch.Tensor, targets: torch.Tensor) -> Encoded:
    B = len(targets)
    where = torch.ones(B, 1, dtype=torch.bool)
    return Encoded(states, targets, states[:, None], where, {"target": targets})


def head_and_encoder(n_items: int, **config) -> tuple[SoftmaxHead, SASRecNet]:
    cfg = SASRecConfig(max_len=4, hidden_size=8, n_layers=1, **config)
    torch.manual_seed(0)
    return SoftmaxHead(n_items, 8, cfg), SASRecNet(n_items, cfg)


@pytest.fixture(scope="module")
def data(synthetic_inter) -> SequenceData:
    return SequenceData.read(synthetic_inter)


def test_unknown_head_lists_the_known_ones(data):
    known = "known: softmax, sqn, sac, snqn, sa2c, smorl, prl, intent"
    with pytest.raises(UnknownNameError, match=known):
        HEADS["dqn"]
    with pytest.raises(UnknownNameError, match=f"head 'dqn'; {known}"):
        make_model("sasrec", head="dqn", epochs=1).fit(data)


def test_unknown_head_options_are_refused(data):
    with pytest.raises(SaferError, match=r"unknown config fields \['gamma'\]"):
        make_model("gru4rec", head_options={"gamma": 0.5}, epochs=1).fit(data)


def test_full_softmax_is_the_cross_entropy_of_the_ranking_scores():
    head, encoder = head_and_encoder(12, protocol="recbole")
    states, targets = torch.randn(5, 8), torch.tensor([1, 4, 4, 12, 7])
    scores = head.score(encoder, states)  # (5, 13): what ranking uses
    assert scores.shape == (5, 13)
    expected = -torch.log_softmax(scores, dim=1)[torch.arange(5), targets].mean()
    loss = head.loss(encoder, encoded(states, targets), torch.Generator())
    torch.testing.assert_close(loss, expected)


def test_sampled_softmax_masks_accidental_hits_and_draws_from_the_generator():
    head, encoder = head_and_encoder(1, protocol="hstu", n_negatives=16)
    states, targets = torch.randn(3, 8), torch.ones(3, dtype=torch.long)
    # one item: every negative is the target itself, so only the positive is left
    loss = head.loss(encoder, encoded(states, targets), torch.Generator().manual_seed(0))
    assert loss.item() == 0.0
    head, encoder = head_and_encoder(50, protocol="hstu", n_negatives=4)
    states, targets = torch.randn(3, 8), torch.tensor([2, 9, 30])
    draw = [
        head.loss(encoder, encoded(states, targets), torch.Generator().manual_seed(s)).item()
        for s in (0, 0, 1)
    ]
    assert draw[0] == draw[1] != draw[2]


@pytest.mark.parametrize("training", ["prefix", "sequence"])
def test_the_head_gets_states_aligned_with_their_targets_and_the_raw_batch(data, training):
    model = make_model("hstu", training=training, epochs=1, n_layers=1, hidden_size=16, max_len=20)
    with mock.patch.object(SoftmaxHead, "loss", autospec=True, side_effect=SoftmaxHead.loss) as spy:
        model.fit(data)
    assert spy.call_count >= 1
    _, encoder, got, generator = spy.call_args.args
    assert encoder is model.net_.encoder and isinstance(generator, torch.Generator)
    torch.testing.assert_close(got.states, got.hidden[got.where], rtol=0, atol=0)
    targets = got.batch["target_seq"][got.where] if training == "sequence" else got.batch["target"]
    assert torch.equal(got.targets, targets) and (got.targets > 0).all()
    assert {"user", "item_seq", "time_seq", "seq_len"} <= set(got.batch)
    # in prefix training the one target follows each row's last real item
    if training == "prefix":
        assert torch.equal(got.where.sum(1), torch.ones(len(got.targets), dtype=torch.long))
        assert torch.equal(got.where.float().argmax(1), got.batch["seq_len"] - 1)
