"""What the encoders share: their base class, the causal mask, and HSTU / FuXi-alpha's biases."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

__all__ = ["RelativeBias", "SequenceEncoder", "causal_mask", "gather_last", "time_buckets"]


class SequenceEncoder(nn.Module):
    """Base of the encoders: item ids in, one state per position out (see the package docstring).

    A subclass sets ``Config`` (its config dataclass, deriving from
    :class:`~safer.seqrec.config.NeuralConfig`), builds ``item_embedding`` (an ``nn.Embedding``
    of ``n_items + 1`` rows, row 0 = padding, as wide as its states) in
    ``__init__(n_items, config)``, and implements ``embed_items`` and ``encode``; ``forward``
    then gives the state at each row's last real item.

    Examples
    --------
    A minimal encoder: the state at position ``i`` is the mean of the items up to ``i``.

    >>> class MeanOfItems(SequenceEncoder):
    ...     def __init__(self, n_items, d=4):
    ...         super().__init__()
    ...         self.item_embedding = nn.Embedding(n_items + 1, d, padding_idx=0)
    ...     def embed_items(self, item_seq):
    ...         return self.item_embedding(item_seq)
    ...     def encode(self, x, valid, time_seq=None):
    ...         w = valid.unsqueeze(-1).float()  # (B, T, 1)
    ...         return (x * w).cumsum(1) / w.cumsum(1).clamp(min=1)
    >>> net = MeanOfItems(n_items=5)
    >>> item_seq, seq_len = torch.tensor([[1, 2, 0], [3, 0, 0]]), torch.tensor([2, 1])
    >>> net(item_seq, torch.zeros(2, 3), seq_len).shape  # the state at each last item
    torch.Size([2, 4])
    """

    Config: ClassVar[type]
    item_embedding: nn.Embedding

    def embed_items(self, item_seq: torch.Tensor) -> torch.Tensor:
        """Item ids ``(B, T)``, 0 = padding -> tokens ``(B, T, d)`` as :meth:`encode` takes them."""
        raise NotImplementedError

    def encode(
        self, x: torch.Tensor, valid: torch.Tensor, time_seq: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Tokens ``x`` (B, T, d), ``valid`` (B, T) True at real tokens, optional times (B, T)
        -> the state of every position (B, T, d); position ``i`` sees valid tokens ``j <= i``."""
        raise NotImplementedError

    def forward(
        self, item_seq: torch.Tensor, time_seq: torch.Tensor, seq_len: torch.Tensor
    ) -> torch.Tensor:
        """``(B, T)`` item ids and times, ``(B,)`` lengths -> ``(B, d)`` at each last item."""
        x = self.encode(self.embed_items(item_seq), item_seq != 0, time_seq)  # (B, T, d)
        return gather_last(x, seq_len)  # (B, d)


def gather_last(x: torch.Tensor, seq_len: torch.Tensor) -> torch.Tensor:
    """``(B, T, d)`` -> ``(B, d)``: the hidden state at the last real item of each row.

    >>> gather_last(torch.arange(6.0).view(1, 3, 2), torch.tensor([2])).tolist()
    [[2.0, 3.0]]
    """
    index = (seq_len - 1).clamp(min=0)
    return x[torch.arange(x.shape[0], device=x.device), index]


def causal_mask(item_seq: torch.Tensor) -> torch.Tensor:
    """``(B, 1, T, T)`` bool, True where query i may attend key j: j <= i and j is not padding.

    >>> causal_mask(torch.tensor([[4, 0]]))[0, 0].tolist()
    [[True, False], [True, False]]
    """
    T = item_seq.shape[1]
    lower = torch.ones(T, T, dtype=torch.bool, device=item_seq.device).tril()
    return lower[None, None] & (item_seq != 0)[:, None, None, :]


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
