"""Sequence-level (autoregressive) training: windows, the every-position loss, causality."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from safer.seqrec import ProtocolError, SequenceData, leave_one_out, make_model
from safer.seqrec.protocol import training_windows

from .test_recommender import tiny

NETS = ["sasrec", "gru4rec", "hstu", "fuxi"]


@pytest.fixture(scope="module")
def data(synthetic_inter) -> SequenceData:
    return SequenceData.read(synthetic_inter)


def as_batch(rows) -> dict[str, torch.Tensor]:
    """Examples or Windows as the batch dict the network's loss takes."""
    return {k: torch.as_tensor(v) for k, v in vars(rows).items()}


@pytest.mark.parametrize("max_len", [3, 5, 20])
def test_windows_cover_each_training_target_exactly_once(data, max_len):
    windows = training_windows(data, max_len)
    covered = Counter()
    for w in range(len(windows)):
        u, start, n = windows.user[w], windows.start[w], windows.seq_len[w]
        seq = data.sequences[u]
        # right-padded like the evaluation inputs: real items first, in order, then zeros
        np.testing.assert_array_equal(windows.item_seq[w, :n], seq[start : start + n])
        assert (windows.item_seq[w, n:] == 0).all() and (windows.target_seq[w, n:] == 0).all()
        # the target of input position i is the next item of the sequence
        np.testing.assert_array_equal(windows.target_seq[w, :n], seq[start + 1 : start + n + 1])
        np.testing.assert_array_equal(windows.time_seq[w, :n], data.times[u][start : start + n])
        covered.update((int(u), int(start + i + 1)) for i in range(n))
    train = leave_one_out(data, max_len)["train"]
    expected = Counter(zip(train.user.tolist(), train.position.tolist(), strict=True))
    assert covered == expected
    assert max(covered.values()) == 1
    if max_len < 10:  # ring sequences have 8-15 items: some users need several windows
        assert len(windows) > len(data.users)


@pytest.mark.parametrize("protocol", ["hstu", "recbole"])
@pytest.mark.parametrize("name", NETS)
def test_sequence_loss_is_the_mean_of_the_prefix_losses(data, name, protocol):
    """With one window per user, one pass gives the same losses as every prefix on its own."""
    model = tiny(name, protocol=protocol, training="sequence", epochs=1).fit(data)
    assert not model.net_.training  # eval mode: no dropout, deterministic
    users = np.arange(6)
    windows = training_windows(data, 20)
    windows = windows.take(np.isin(windows.user, users))
    assert len(windows) == len(users)  # max_len 20 > every ring sequence
    prefixes = leave_one_out(data, 20)["train"]
    prefixes = prefixes.take(np.isin(prefixes.user, users))
    with torch.no_grad():  # the same negatives for both
        seq_loss, n_seq = model.net_.loss(as_batch(windows), torch.Generator().manual_seed(5))
        prefix_loss, n_prefix = model.net_.loss(
            as_batch(prefixes), torch.Generator().manual_seed(5)
        )
    assert n_seq == int((windows.target_seq != 0).sum()) == n_prefix == len(prefixes)
    torch.testing.assert_close(seq_loss, prefix_loss, rtol=1e-5, atol=1e-6)


def test_hstu_protocol_trains_on_sequences_and_recbole_on_prefixes(data):
    assert make_model("hstu", protocol="hstu").config.resolved_training() == "sequence"
    assert make_model("hstu").config.resolved_training() == "prefix"
    auto = tiny("sasrec", epochs=1).fit(data)
    prefix = tiny("sasrec", epochs=1, training="prefix").fit(data)
    test = leave_one_out(data, 20)["test"]
    np.testing.assert_array_equal(auto.score(test), prefix.score(test))


def test_unknown_training_is_refused_with_the_choices(data):
    with pytest.raises(ProtocolError, match="prefix, sequence"):
        tiny("sasrec", training="windows").fit(data)


@pytest.mark.parametrize("name", NETS)
def test_sequence_training_learns_the_ring(data, name):
    """Sequence-trained models under the hstu protocol beat popularity on the ring data."""
    pop = tiny("pop", protocol="hstu").fit(data).evaluate(data, "test")
    model = tiny(name, protocol="hstu", epochs=30, learning_rate=1e-2, sequence_batch_size=32)
    result = model.fit(data).evaluate(data, "test")
    assert result["protocol"] == "hstu"
    assert result["ndcg@10"] > pop["ndcg@10"] + 0.2, (result, pop)
