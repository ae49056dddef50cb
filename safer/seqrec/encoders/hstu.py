"""HSTU: Hierarchical Sequential Transduction Units (Zhai et al., ICML 2024).

Each layer: ``U, V, Q, K = split(SiLU(f1(LN(x))))``; pointwise attention
``A = SiLU(Q K^T + rab_pos + rab_time) / T`` (no softmax) under a causal mask; output
``x + f2(LN(A V) * U)`` (U-gating). ``rab_time`` buckets ``log |t_i - t_j|`` of the prefix items.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from safer.seqrec.config import NeuralConfig
from safer.seqrec.encoders._layers import RelativeBias, SequenceEncoder, causal_mask

__all__ = ["HSTUConfig", "HSTUNet"]


@dataclass
class HSTUConfig(NeuralConfig):
    """HSTU hyper-parameters plus the shared training settings.

    Examples
    --------
    >>> from safer.seqrec import make_model
    >>> make_model("hstu", n_time_buckets=32).config.n_time_buckets
    32
    >>> make_model("hstu", time_buckets=32)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    safer.errors.SaferError: ...time_buckets...
    """

    n_layers: int = 2
    n_heads: int = 2
    hidden_size: int = 64
    attention_dim: int = 32  # per head, for Q/K and V
    dropout: float = 0.2
    n_time_buckets: int = 64


class HSTULayer(nn.Module):
    """One HSTU layer (pointwise SiLU attention with relative bias and U-gating)."""

    def __init__(self, c: HSTUConfig):
        super().__init__()
        self.h, self.a = c.n_heads, c.attention_dim
        self.norm_in = nn.LayerNorm(c.hidden_size)
        self.f1 = nn.Linear(c.hidden_size, 4 * self.h * self.a)
        self.norm_att = nn.LayerNorm(self.h * self.a)
        self.f2 = nn.Linear(self.h * self.a, c.hidden_size)
        self.bias = RelativeBias(c.max_len, c.n_heads, c.n_time_buckets)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, time_seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        u, v, q, k = nn.functional.silu(self.f1(self.norm_in(x))).chunk(4, dim=-1)  # (B, T, H*a)
        q, k, v = (t.view(B, T, self.h, self.a).transpose(1, 2) for t in (q, k, v))  # (B, H, T, a)
        pos_bias, time_bias = self.bias(time_seq)  # (B, H, T, T)
        att = q @ k.transpose(-1, -2) / math.sqrt(self.a) + pos_bias + time_bias
        att = nn.functional.silu(att).masked_fill(~mask, 0.0) / T  # (B, H, T, T)
        y = (att @ v).transpose(1, 2).reshape(B, T, self.h * self.a)
        return x + self.f2(self.dropout(self.norm_att(y) * u))


class HSTUNet(SequenceEncoder):
    """Item + position embeddings -> ``n_layers`` HSTU layers -> last hidden state.

    The ``hstu`` model of :data:`safer.seqrec.MODELS` is this encoder with the default head
    (``protocol="hstu"`` gives the paper's protocol).

    Examples
    --------
    >>> net = HSTUNet(n_items=9, config=HSTUConfig(max_len=4))
    >>> net(torch.tensor([[3, 5, 0, 0]]), torch.tensor([[1.0, 9.0, 0, 0]]), torch.tensor([2])).shape
    torch.Size([1, 64])
    """

    Config = HSTUConfig

    def __init__(self, n_items: int, config: HSTUConfig):
        super().__init__()
        c = config
        self.scale = math.sqrt(c.hidden_size)
        self.item_embedding = nn.Embedding(n_items + 1, c.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(c.max_len, c.hidden_size)
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)
        self.dropout = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList(HSTULayer(c) for _ in range(c.n_layers))
        self.norm_out = nn.LayerNorm(c.hidden_size)

    def embed_items(self, item_seq: torch.Tensor) -> torch.Tensor:
        """Item ids (B, T), 0 = padding -> scaled token embeddings (B, T, d) for :meth:`encode`."""
        return self.item_embedding(item_seq) * self.scale

    def encode(
        self, x: torch.Tensor, valid: torch.Tensor, time_seq: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Already-embedded tokens ``x`` (B, T, d) -> output of every position (B, T, d).

        ``valid`` (B, T) is True at real tokens; position ``i`` attends to valid ``j <= i``;
        ``time_seq`` (B, T) gives each token's time for the log-bucketed time bias (``None``:
        all times equal, so that bias is one constant). This is the part the DTR baseline
        ``hstu`` (:mod:`safer.models.baselines.next_action`) reuses on embedded treatment
        histories.
        """
        T = x.shape[1]
        pos = self.position_embedding(torch.arange(T, device=x.device))
        x = self.dropout(x + pos[None])  # (B, T, d)
        x = x * valid[..., None]
        mask = causal_mask(valid)  # (B, 1, T, T)
        ts = torch.zeros(valid.shape, device=x.device) if time_seq is None else time_seq.float()
        for layer in self.layers:
            x = layer(x, ts, mask)
        return self.norm_out(x)  # (B, T, d)
