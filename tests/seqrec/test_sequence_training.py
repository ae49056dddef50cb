"""Sequence-level (autoregressive) training: windows, the every-position loss, causality."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from safer.seqrec import ProtocolError, SequenceData, leave_one_out, make_model
from safer.seqrec.protocol import training_windows

from .test_models import tiny

NETS = ["sasrec", "gru4rec", "hstu", "fuxi"]


@pytest.fixture(scope="module")
def data(synthetic_inter) -> SequenceData:
    return SequenceData.read(synthetic_inter)


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
    assert not model.module_.training  # eval mode: no dropout, deterministic
    users = np.arange(6)
    windows = training_windows(data, 20)
    windows = windows.take(np.isin(windows.user, users))
    assert len(windows) == len(users)  # max_len 20 > every ring sequence
    prefixes = leave_one_out(data, 20)["train"]
    prefixes = prefixes.take(np.isin(prefixes.user, users))
    with torch.no_grad():
        seq_loss = model._sequence_loss(
            torch.as_tensor(windows.item_seq),
            torch.as_tensor(windows.time_seq),
            torch.as_tensor(windows.target_seq),
            torch.Generator().manual_seed(5),  # the same negatives for both
        )
        prefix_loss = model._prefix_loss(
            torch.as_tensor(prefixes.item_seq),
            torch.as_tensor(prefixes.time_seq),
            torch.as_tensor(prefixes.seq_len),
            torch.as_tensor(prefixes.target),
            torch.Generator().manual_seed(5),
        )
    assert int((windows.target_seq != 0).sum()) == len(prefixes)
    torch.testing.assert_close(seq_loss, prefix_loss, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NETS)
def test_no_position_sees_its_target_or_a_later_item(data, name):
    model = tiny(name, protocol="hstu", epochs=1).fit(data)
    windows = training_windows(data, 20).take(np.arange(8))
    seq = torch.as_tensor(windows.item_seq)
    ts = torch.as_tensor(windows.time_seq)
    j = 4  # position j holds the target of position j - 1
    changed_seq, changed_ts = seq.clone(), ts.clone()
    changed_seq[:, j:] = changed_seq[:, j:] % data.n_items + 1
    changed_ts[:, j:] += 1e6
    weight = model.module_.item_embedding.weight

    def logits(s, t):
        with torch.no_grad():
            x = model.module_.encode(model.module_.embed_items(s), s != 0, t)  # (B, T, d)
            return x @ weight.T  # (B, T, n_items + 1)

    before, after = logits(seq, ts), logits(changed_seq, changed_ts)
    torch.testing.assert_close(after[:, :j], before[:, :j], rtol=0, atol=1e-6)
    assert not torch.allclose(after[:, j:], before[:, j:])  # the change does reach later ones


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
