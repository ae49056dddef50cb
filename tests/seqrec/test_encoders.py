"""The encoders as pure modules: registry, shapes, causality (no data set, no training)."""

from __future__ import annotations

import pytest
import torch

from safer._registry import UnknownNameError
from safer.seqrec.config import NeuralConfig
from safer.seqrec.encoders import ENCODERS
from safer.seqrec.encoders._layers import gather_last

TINY = {
    "sasrec": {"n_layers": 1, "hidden_size": 16, "inner_size": 32},
    "gru4rec": {"embedding_size": 16, "hidden_size": 16},
    "hstu": {"n_layers": 1, "hidden_size": 16, "attention_dim": 8},
    "fuxi": {"n_layers": 1, "hidden_size": 16, "attention_dim": 8, "ffn_size": 32},
}
N_ITEMS, T = 30, 8


def build(name: str) -> torch.nn.Module:
    cls = ENCODERS[name]
    torch.manual_seed(0)
    return cls(N_ITEMS, cls.Config(max_len=T, **TINY[name])).eval()


def test_unknown_encoder_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="known: sasrec, gru4rec, hstu, fuxi"):
        ENCODERS["bert4rec"]


@pytest.mark.parametrize("name", list(ENCODERS))
def test_contract_shapes(name):
    net = build(name)
    assert issubclass(type(net).Config, NeuralConfig)
    assert net.item_embedding.num_embeddings == N_ITEMS + 1
    items = torch.tensor([[3, 5, 7, 0, 0, 0, 0, 0]])
    times = torch.tensor([[1.0, 50.0, 900.0, 0, 0, 0, 0, 0]])
    with torch.no_grad():
        hidden = net.encode(net.embed_items(items), items != 0, times)  # (1, T, d)
        last = net(items, times, torch.tensor([3]))  # (1, d)
    assert hidden.shape == (1, T, net.item_embedding.embedding_dim)
    torch.testing.assert_close(last, gather_last(hidden, torch.tensor([3])), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(ENCODERS))
def test_no_position_sees_its_target_or_a_later_item(name):
    net = build(name)
    gen = torch.Generator().manual_seed(1)
    seq = torch.randint(1, N_ITEMS + 1, (4, T), generator=gen)
    ts = torch.cumsum(torch.randint(60, 5000, (4, T), generator=gen), dim=1).double()
    j = 4  # position j holds the target of position j - 1
    changed_seq, changed_ts = seq.clone(), ts.clone()
    changed_seq[:, j:] = changed_seq[:, j:] % N_ITEMS + 1
    changed_ts[:, j:] += 1e6

    def states(s, t):
        with torch.no_grad():
            return net.encode(net.embed_items(s), s != 0, t)  # (B, T, d)

    before, after = states(seq, ts), states(changed_seq, changed_ts)
    torch.testing.assert_close(after[:, :j], before[:, :j], rtol=0, atol=1e-6)
    assert not torch.allclose(after[:, j:], before[:, j:])  # the change does reach later ones
