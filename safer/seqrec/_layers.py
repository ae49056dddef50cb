"""Blocks shared by HSTU and FuXi-alpha: relative position and log-bucketed time biases."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RelativeBias", "time_buckets"]


def time_buckets(time_seq: torch.Tensor, n_buckets: int, base: float = 0.301) -> torch.Tensor:
    """``(B, T)`` timestamps -> ``(B, T, T)`` log buckets of ``|t_i - t_j|``.

    Bucket ``floor(log(max(dt, 1)) / base)`` clipped to ``n_buckets - 1``; only the times of the
    items in the prefix are used (never the target's time), so nothing from the future leaks.
    """
    dt = (time_seq[:, :, None] - time_seq[:, None, :]).abs().clamp(min=1.0)  # (B, T, T)
    return (dt.log() / base).floor().long().clamp(0, n_buckets - 1)


class RelativeBias(nn.Module):
    """Learned per-head scalars for the query-key distance ``i - j`` and the time bucket.

    Returns ``(pos_bias, time_bias)``, each ``(B, H, T, T)``.
    """

    def __init__(self, max_len: int, n_heads: int, n_buckets: int):
        super().__init__()
        self.n_buckets = n_buckets
        self.position = nn.Embedding(max_len, n_heads)
        self.time = nn.Embedding(n_buckets, n_heads)
        nn.init.normal_(self.position.weight, std=0.02)
        nn.init.normal_(self.time.weight, std=0.02)

    def forward(self, time_seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T = time_seq.shape[1]
        idx = torch.arange(T, device=time_seq.device)
        distance = (idx[:, None] - idx[None, :]).clamp(min=0)  # (T, T), causal part only used
        pos = self.position(distance).permute(2, 0, 1)[None]  # (1, H, T, T)
        tb = self.time(time_buckets(time_seq, self.n_buckets)).permute(0, 3, 1, 2)  # (B, H, T, T)
        return pos.expand_as(tb), tb
