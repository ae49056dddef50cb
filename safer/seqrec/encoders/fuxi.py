"""FuXi-alpha (Ye et al., WWW 2025): adaptive multi-channel self-attention + multi-stage FFN.

Adaptive multi-channel self-attention (AMS) keeps three channels apart: a semantic channel
``SiLU(Q K^T)`` over item content, a positional channel whose weights are learned scalars of the
distance ``i - j``, and a temporal channel whose weights are learned scalars of the log-bucketed
time gap. Each channel mixes the shared values V; the three outputs are RMS-normalised,
concatenated and gated by U. The multi-stage FFN first projects the gated channels back to the
model width and adds the input (stage 1), then applies a SwiGLU feed-forward with a residual
(stage 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from safer.seqrec.config import NeuralConfig
from safer.seqrec.encoders._layers import RelativeBias, SequenceEncoder, causal_mask

__all__ = ["FuXiAlphaNet", "FuXiConfig"]


@dataclass
class FuXiConfig(NeuralConfig):
    """FuXi-alpha hyper-parameters plus the shared training settings.

    Examples
    --------
    >>> from safer.seqrec import FuXiAlpha
    >>> model = FuXiAlpha(FuXiConfig(n_layers=1, ffn_size=64, epochs=10))
    >>> model.config.ffn_size, model.config.attention_dim, model.config.epochs
    (64, 32, 10)
    """

    n_layers: int = 2
    n_heads: int = 2
    hidden_size: int = 64
    attention_dim: int = 32  # per head
    ffn_size: int = 128  # SwiGLU inner width
    dropout: float = 0.2
    n_time_buckets: int = 64


class AMSAttention(nn.Module):
    """Adaptive multi-channel self-attention: semantic, positional and temporal channels."""

    def __init__(self, c: FuXiConfig):
        super().__init__()
        self.h, self.a = c.n_heads, c.attention_dim
        width = self.h * self.a
        self.norm_in = nn.RMSNorm(c.hidden_size)
        self.f1 = nn.Linear(c.hidden_size, 3 * width + 3 * width)  # Q, K, V and a 3-channel U
        self.bias = RelativeBias(c.max_len, c.n_heads, c.n_time_buckets)
        self.norms = nn.ModuleList(nn.RMSNorm(width) for _ in range(3))

    def forward(self, x: torch.Tensor, time_seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        width = self.h * self.a
        q, k, v, u = nn.functional.silu(self.f1(self.norm_in(x))).split(
            [width, width, width, 3 * width], dim=-1
        )
        q, k, v = (t.view(B, T, self.h, self.a).transpose(1, 2) for t in (q, k, v))  # (B,H,T,a)
        pos_w, time_w = self.bias(time_seq)  # (B, H, T, T)
        semantic = nn.functional.silu(q @ k.transpose(-1, -2) / math.sqrt(self.a))
        outputs = []
        for weights, norm in zip((semantic, pos_w, time_w), self.norms, strict=False):
            w = weights.masked_fill(~mask, 0.0) / T  # (B, H, T, T)
            y = (w @ v).transpose(1, 2).reshape(B, T, width)
            outputs.append(norm(y))
        return torch.cat(outputs, dim=-1) * u  # (B, T, 3 * width)


class MultiStageFFN(nn.Module):
    """Stage 1: project the channels and add the input; stage 2: SwiGLU with a residual."""

    def __init__(self, c: FuXiConfig):
        super().__init__()
        self.project = nn.Linear(3 * c.n_heads * c.attention_dim, c.hidden_size)
        self.norm = nn.RMSNorm(c.hidden_size)
        self.gate = nn.Linear(c.hidden_size, c.ffn_size, bias=False)
        self.up = nn.Linear(c.hidden_size, c.ffn_size, bias=False)
        self.down = nn.Linear(c.ffn_size, c.hidden_size, bias=False)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, channels: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        o = x + self.dropout(self.project(channels))  # stage 1, (B, T, d)
        z = self.norm(o)
        return o + self.dropout(self.down(nn.functional.silu(self.gate(z)) * self.up(z)))


class FuXiAlphaNet(SequenceEncoder):
    """Item embeddings -> ``n_layers`` (AMS + multi-stage FFN) blocks -> last hidden state.

    Positions enter only through the positional channel (no absolute position embedding). The
    ``fuxi`` model of :data:`safer.seqrec.MODELS` is this encoder with the default head.

    Examples
    --------
    >>> net = FuXiAlphaNet(n_items=9, config=FuXiConfig(max_len=4))
    >>> net(torch.tensor([[3, 5, 0, 0]]), torch.tensor([[1.0, 9.0, 0, 0]]), torch.tensor([2])).shape
    torch.Size([1, 64])
    """

    Config = FuXiConfig

    def __init__(self, n_items: int, config: FuXiConfig):
        super().__init__()
        c = config
        self.scale = math.sqrt(c.hidden_size)
        self.item_embedding = nn.Embedding(n_items + 1, c.hidden_size, padding_idx=0)
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        self.dropout = nn.Dropout(c.dropout)
        self.attention = nn.ModuleList(AMSAttention(c) for _ in range(c.n_layers))
        self.ffn = nn.ModuleList(MultiStageFFN(c) for _ in range(c.n_layers))
        self.norm_out = nn.RMSNorm(c.hidden_size)

    def embed_items(self, item_seq: torch.Tensor) -> torch.Tensor:
        """Item ids (B, T), 0 = padding -> scaled token embeddings (B, T, d) for :meth:`encode`."""
        return self.item_embedding(item_seq) * self.scale

    def encode(
        self, x: torch.Tensor, valid: torch.Tensor, time_seq: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Already-embedded tokens ``x`` (B, T, d) -> output of every position (B, T, d).

        ``valid`` (B, T) is True at real tokens; position ``i`` attends to valid ``j <= i``;
        ``time_seq`` (B, T) feeds the temporal channel (``None``: all times equal). Same
        signature as :meth:`safer.seqrec.encoders.hstu.HSTUNet.encode`.
        """
        x = self.dropout(x)  # (B, T, d)
        mask = causal_mask(valid)  # (B, 1, T, T)
        ts = torch.zeros(valid.shape, device=x.device) if time_seq is None else time_seq.float()
        for attention, ffn in zip(self.attention, self.ffn, strict=False):
            x = ffn(attention(x, ts, mask), x)
        return self.norm_out(x)  # (B, T, d)
