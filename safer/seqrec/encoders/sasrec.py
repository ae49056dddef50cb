"""SASRec: causal self-attention over the item sequence (Kang & McAuley, ICDM 2018).

Post-LayerNorm Transformer blocks with learned absolute positions, as in RecBole's SASRec; the
defaults are RecBole's (2 layers, 2 heads, hidden 64, inner 256, dropout 0.5, GELU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from safer.seqrec.config import NeuralConfig
from safer.seqrec.encoders._layers import SequenceEncoder, causal_mask

__all__ = ["SASRecConfig", "SASRecNet"]


@dataclass
class SASRecConfig(NeuralConfig):
    """SASRec hyper-parameters (RecBole's defaults) plus the shared training settings.

    Examples
    --------
    >>> from safer.seqrec import make_model
    >>> config = make_model("sasrec", n_layers=1, hidden_size=32).config
    >>> isinstance(config, SASRecConfig), config.n_layers, config.inner_size, config.head
    (True, 1, 256, 'softmax')
    """

    n_layers: int = 2
    n_heads: int = 2
    hidden_size: int = 64
    inner_size: int = 256
    hidden_dropout: float = 0.5
    attn_dropout: float = 0.5
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02


class SelfAttention(nn.Module):
    """Multi-head causal self-attention with a residual and a post-LayerNorm."""

    def __init__(self, d: int, n_heads: int, attn_dropout: float, dropout: float, eps: float):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.attn_dropout = nn.Dropout(attn_dropout)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, d // self.n_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, d_h)
        att = q @ k.transpose(-1, -2) / math.sqrt(d // self.n_heads)  # (B, H, T, T)
        att = att.masked_fill(~mask, -1e4).softmax(-1)
        y = (self.attn_dropout(att) @ v).transpose(1, 2).reshape(B, T, d)
        return self.norm(self.dropout(self.out(y)) + x)


class FeedForward(nn.Module):
    def __init__(self, d: int, inner: int, dropout: float, eps: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, inner), nn.GELU(), nn.Linear(inner, d))
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.dropout(self.net(x)) + x)


class SASRecNet(SequenceEncoder):
    """Item + position embeddings -> ``n_layers`` causal Transformer blocks -> last hidden state.

    The ``sasrec`` model of :data:`safer.seqrec.MODELS` is this encoder with the default head.

    Examples
    --------
    >>> net = SASRecNet(n_items=9, config=SASRecConfig(max_len=4, n_layers=1))
    >>> net(torch.tensor([[3, 5, 0, 0]]), torch.zeros(1, 4), torch.tensor([2])).shape
    torch.Size([1, 64])
    """

    Config = SASRecConfig

    def __init__(self, n_items: int, config: SASRecConfig):
        super().__init__()
        c, d = config, config.hidden_size
        self.item_embedding = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.position_embedding = nn.Embedding(c.max_len, d)
        self.norm = nn.LayerNorm(d, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout)
        self.blocks = nn.ModuleList(
            nn.ModuleList(
                [
                    SelfAttention(d, c.n_heads, c.attn_dropout, c.hidden_dropout, c.layer_norm_eps),
                    FeedForward(d, c.inner_size, c.hidden_dropout, c.layer_norm_eps),
                ]
            )
            for _ in range(c.n_layers)
        )
        self.apply(lambda m: init_weights(m, c.initializer_range))

    def embed_items(self, item_seq: torch.Tensor) -> torch.Tensor:
        """Item ids (B, T), 0 = padding -> token embeddings (B, T, d) as :meth:`encode` takes."""
        return self.item_embedding(item_seq)

    def encode(
        self, x: torch.Tensor, valid: torch.Tensor, time_seq: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Already-embedded tokens ``x`` (B, T, d) -> hidden state of every position (B, T, d).

        ``valid`` (B, T) is True at real tokens; position ``i`` attends to valid ``j <= i``.
        Positions are the absolute indices ``0..T-1``. ``time_seq`` is unused (SASRec has no
        time input); it is accepted so every encoder of the zoo has the same signature. This
        is the part the DTR baseline ``sasrec`` (:mod:`safer.models.baselines.next_action`)
        reuses on embedded treatment histories.
        """
        T = x.shape[1]
        pos = torch.arange(T, device=x.device)
        x = x + self.position_embedding(pos)[None]  # (B, T, d)
        x = self.dropout(self.norm(x))
        mask = causal_mask(valid)  # (B, 1, T, T)
        for attention, ffn in self.blocks:
            x = ffn(attention(x, mask))
        return x


def init_weights(module: nn.Module, std: float) -> None:
    """Normal(0, std) weights, zero biases, unit LayerNorm (BERT-style, as RecBole)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(0.0, std)
    if isinstance(module, nn.LayerNorm):
        module.weight.data.fill_(1.0)
    if isinstance(module, (nn.Linear, nn.LayerNorm)) and module.bias is not None:
        module.bias.data.zero_()
