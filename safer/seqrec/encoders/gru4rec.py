"""GRU4Rec: a GRU over the item sequence (Hidasi et al., ICLR 2016; Tan et al. 2016 variant).

RecBole's layout and defaults: embedding 64 with dropout 0.3 -> 1-layer GRU with hidden 128 ->
linear back to 64 -> the state at the last real item, scored against the item embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from safer.seqrec.config import NeuralConfig
from safer.seqrec.encoders._layers import SequenceEncoder

__all__ = ["GRU4RecConfig", "GRU4RecNet"]


@dataclass
class GRU4RecConfig(NeuralConfig):
    """GRU4Rec hyper-parameters (RecBole's defaults) plus the shared training settings.

    Examples
    --------
    >>> from safer.seqrec import make_model
    >>> config = GRU4RecConfig(hidden_size=32, epochs=5)
    >>> make_model("gru4rec", hidden_size=32, epochs=5).config == config
    True
    >>> config.embedding_size, config.max_len  # the shared settings: NeuralConfig's
    (64, 50)
    """

    embedding_size: int = 64
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.3


class GRU4RecNet(SequenceEncoder):
    """Embedding -> dropout -> GRU -> linear; returns the state at each row's last item.

    The ``gru4rec`` model of :data:`safer.seqrec.MODELS` is this encoder with the default head.

    Examples
    --------
    >>> net = GRU4RecNet(n_items=9, config=GRU4RecConfig())
    >>> net(torch.tensor([[3, 5, 0]]), torch.zeros(1, 3), torch.tensor([2])).shape
    torch.Size([1, 64])
    """

    Config = GRU4RecConfig

    def __init__(self, n_items: int, config: GRU4RecConfig):
        super().__init__()
        c = config
        self.item_embedding = nn.Embedding(n_items + 1, c.embedding_size, padding_idx=0)
        self.dropout = nn.Dropout(c.dropout)
        self.gru = nn.GRU(
            c.embedding_size, c.hidden_size, c.num_layers, bias=False, batch_first=True
        )
        self.dense = nn.Linear(c.hidden_size, c.embedding_size)
        nn.init.xavier_normal_(self.item_embedding.weight)
        for weight in self.gru.parameters():  # RecBole's init: Xavier-uniform, input and hidden
            nn.init.xavier_uniform_(weight)

    def embed_items(self, item_seq: torch.Tensor) -> torch.Tensor:
        """Item ids (B, T), 0 = padding -> token embeddings (B, T, e) for :meth:`encode`."""
        return self.item_embedding(item_seq)

    def encode(
        self, x: torch.Tensor, valid: torch.Tensor, time_seq: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embedded tokens ``x`` (B, T, e) -> the GRU state of every position (B, T, e).

        The GRU runs left to right, so position ``i`` has seen tokens ``0..i`` only; with
        right-padded rows the states of real positions never see padding. ``valid`` and
        ``time_seq`` are unused (same signature as the other encoders).
        """
        h, _ = self.gru(self.dropout(x))  # (B, T, hidden)
        return self.dense(h)  # (B, T, e)
