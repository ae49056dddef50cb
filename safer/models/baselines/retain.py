"""RETAIN (Choi et al., NeurIPS 2016): reverse-time attention with visit- and variable-level
weights.

Two GRUs read the embedded history in reverse time. The first gives one scalar per step, turned
into the visit-level attention ``alpha`` (softmax over the window's present steps); the second
gives a vector per step, ``beta = tanh(W h)``, the variable-level attention. The context is
``c = sum_t alpha_t * (beta_t ⊙ v_t)`` over the step embeddings ``v_t``, so each step's and each
embedding dimension's contribution to a decision can be read off (``RetainNet.attention``).
Static patient data is added to ``c`` before the head.

Reference: E. Choi, M. T. Bahadori, J. Sun, J. Kulas, A. Schuetz, W. Stewart. "RETAIN: An
Interpretable Predictive Model for Healthcare using Reverse Time Attention Mechanism", 2016.

Examples
--------
>>> from safer.cohorts import simulate_cohort
>>> from safer.models.baselines import RetainConfig, RetainRecommender
>>> cohort = simulate_cohort(n_stays=40, seed=0, progress=False)
>>> model = RetainRecommender(RetainConfig(use_notes=False, epochs=1)).fit(cohort, progress=False)
>>> model.embed(cohort).shape == (len(cohort), 32)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from safer.actions import N_ACTIONS
from safer.models.baselines._base import BaselineConfig, BaselineRecommender

__all__ = ["RetainNet", "RetainConfig", "RetainRecommender"]


class RetainNet(nn.Module):
    """``x`` (B, H, in_dim), ``pad`` (B, H), ``static`` (B, s) -> logits (B, 25), c (B, d)."""

    def __init__(self, in_dim: int, n_static: int, d_model: int, dropout: float):
        super().__init__()
        self.embed = nn.Linear(in_dim, d_model, bias=False)
        self.gru_alpha = nn.GRU(d_model, d_model, batch_first=True)
        self.gru_beta = nn.GRU(d_model, d_model, batch_first=True)
        self.w_alpha = nn.Linear(d_model, 1)
        self.w_beta = nn.Linear(d_model, d_model)
        self.static_proj = nn.Linear(n_static, d_model)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, N_ACTIONS)

    def attention(self, x, pad):
        """Step embeddings ``v`` (B, H, d), ``alpha`` (B, H) and ``beta`` (B, H, d)."""
        v = self.embed(x)  # (B, H, d)
        rev = torch.flip(self.drop(v), dims=[1])  # (B, H, d): the current decision first
        g, _ = self.gru_alpha(rev)  # (B, H, d)
        h, _ = self.gru_beta(rev)  # (B, H, d)
        e = torch.flip(self.w_alpha(g).squeeze(-1), dims=[1])  # (B, H), back to time order
        alpha = torch.softmax(e.masked_fill(pad, float("-inf")), dim=-1)  # (B, H)
        beta = torch.tanh(torch.flip(self.w_beta(h), dims=[1]))  # (B, H, d)
        return v, alpha, beta

    def forward(self, x, pad, static):
        v, alpha, beta = self.attention(x, pad)
        c = (alpha.unsqueeze(-1) * beta * v).sum(1)  # (B, d)
        c = c + self.static_proj(static)  # (B, d)
        return self.head(self.drop(c)), c


@dataclass
class RetainConfig(BaselineConfig):
    """:class:`BaselineConfig` (RETAIN has no extra hyperparameters at this size).

    Examples
    --------
    >>> from safer.models import make_model
    >>> config = make_model("retain", history=4, use_notes=False).config
    >>> type(config).__name__, config.history, config.use_notes
    ('RetainConfig', 4, False)
    """


class RetainRecommender(BaselineRecommender):
    """RETAIN over the history window (estimator contract of :class:`BaselineRecommender`).

    Examples
    --------
    >>> RetainRecommender().config.d_model
    32
    """

    Config = RetainConfig

    def _build_net(self, in_dim: int, n_static: int) -> nn.Module:
        c = self.config
        return RetainNet(in_dim, n_static, c.d_model, c.dropout)
