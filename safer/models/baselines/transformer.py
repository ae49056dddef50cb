"""Transformer-encoder baseline: self-attention over each decision's history window.

A projection and a learned position embedding feed a stack of ``torch.nn.TransformerEncoder``
layers (pre-norm) with a key-padding mask; the output at the last position (the current
decision) plus the static patient data is the representation. Unlike SAFER there is no separate
note encoder and no cross-modal attention: the note embedding is concatenated to each step.

Examples
--------
>>> from safer.cohorts import simulate_cohort
>>> from safer.models.baselines import TransformerConfig, TransformerRecommender
>>> cohort = simulate_cohort(n_stays=40, seed=0, progress=False)
>>> cfg = TransformerConfig(use_notes=False, epochs=1)
>>> bool(TransformerRecommender(cfg).fit(cohort, progress=False).uncertainty(cohort).max() <= 1)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from safer.actions import N_ACTIONS
from safer.models.baselines._base import BaselineConfig, BaselineRecommender

__all__ = ["TransformerNet", "TransformerConfig", "TransformerRecommender"]


class TransformerNet(nn.Module):
    """``x`` (B, H, in_dim), ``pad`` (B, H), ``static`` (B, s) -> logits (B, 25), z (B, d)."""

    def __init__(self, in_dim: int, n_static: int, history: int, d_model: int, n_heads: int,
                 n_layers: int, dropout: float):  # fmt: skip
        super().__init__()
        self.proj = nn.Linear(in_dim, d_model)
        self.pos = nn.Parameter(torch.zeros(history, d_model))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=2 * d_model, dropout=dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.static_proj = nn.Linear(n_static, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, N_ACTIONS)

    def forward(self, x, pad, static):
        h = self.proj(x) + self.pos  # (B, H, d)
        h = self.encoder(h, src_key_padding_mask=pad)  # (B, H, d); the last step is never pad
        z = self.norm(h[:, -1] + self.static_proj(static))  # (B, d)
        return self.head(self.drop(z)), z


@dataclass
class TransformerConfig(BaselineConfig):
    """:class:`BaselineConfig` plus attention heads and encoder layers.

    Examples
    --------
    >>> TransformerRecommender(TransformerConfig(n_heads=2, d_model=16)).config.n_heads
    2
    >>> TransformerConfig(n_heads=3, d_model=16).check()
    Traceback (most recent call last):
    ...
    safer.errors.SaferError: invalid TransformerConfig: d_model (16) must be divisible by n_heads
    """

    n_heads: int = 4
    n_layers: int = 1

    def _extra_problems(self) -> list[str]:
        problems = [f"{n} must be >= 1" for n in ("n_heads", "n_layers") if getattr(self, n) < 1]
        if not problems and self.d_model % self.n_heads:
            problems.append(f"d_model ({self.d_model}) must be divisible by n_heads")
        return problems


class TransformerRecommender(BaselineRecommender):
    """Transformer encoder over the history window (contract of :class:`BaselineRecommender`).

    Examples
    --------
    >>> TransformerRecommender(TransformerConfig(n_heads=2)).config.n_layers
    1
    """

    Config = TransformerConfig

    def _build_net(self, in_dim: int, n_static: int) -> nn.Module:
        c = self.config
        return TransformerNet(in_dim, n_static, c.history, c.d_model, c.n_heads, c.n_layers,
                              c.dropout)  # fmt: skip
