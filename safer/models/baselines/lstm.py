"""LSTM baseline: a recurrent network over each decision's history window.

The classic sequence baseline of treatment recommendation (e.g. the LSTM rows of the SAFER
paper's Table 2). Per step the input is SAFER's structured row plus the step's usable note
embedding (see :mod:`safer.models.baselines._base`); the last hidden state, plus the static
patient data, is the decision's representation.

Examples
--------
>>> from safer.cohorts import simulate_cohort
>>> from safer.models.baselines import LSTMConfig, LSTMRecommender
>>> cohort = simulate_cohort(n_stays=40, seed=0, progress=False)
>>> model = LSTMRecommender(LSTMConfig(use_notes=False, epochs=1)).fit(cohort, progress=False)
>>> model.predict_proba(cohort).shape == (len(cohort), 25)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from safer.actions import N_ACTIONS
from safer.models.baselines._base import BaselineConfig, BaselineRecommender

__all__ = ["LSTMNet", "LSTMConfig", "LSTMRecommender"]


class LSTMNet(nn.Module):
    """``x`` (B, H, in_dim), ``pad`` (B, H), ``static`` (B, s) -> logits (B, 25), z (B, d)."""

    def __init__(self, in_dim: int, n_static: int, d_model: int, n_layers: int, dropout: float):
        super().__init__()
        self.proj = nn.Linear(in_dim, d_model)
        self.lstm = nn.LSTM(d_model, d_model, num_layers=n_layers, batch_first=True,
                            dropout=dropout if n_layers > 1 else 0.0)  # fmt: skip
        self.static_proj = nn.Linear(n_static, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, N_ACTIONS)

    def forward(self, x, pad, static):
        h = torch.relu(self.proj(x)) * (~pad).unsqueeze(-1)  # (B, H, d); padding steps = 0
        out, _ = self.lstm(h)  # (B, H, d); windows are right-aligned: the decision is last
        z = self.norm(out[:, -1] + self.static_proj(static))  # (B, d)
        return self.head(self.drop(z)), z


@dataclass
class LSTMConfig(BaselineConfig):
    """:class:`BaselineConfig` plus the number of stacked LSTM layers.

    Examples
    --------
    >>> LSTMRecommender(LSTMConfig(n_layers=2, history=4)).config.n_layers
    2
    >>> LSTMConfig(n_layers=0, history=0).check()
    Traceback (most recent call last):
    ...
    safer.errors.SaferError: invalid LSTMConfig: history must be >= 1; n_layers must be >= 1
    """

    n_layers: int = 1

    def _extra_problems(self) -> list[str]:
        return ["n_layers must be >= 1"] if self.n_layers < 1 else []


class LSTMRecommender(BaselineRecommender):
    """LSTM over the history window (estimator contract of :class:`BaselineRecommender`).

    Examples
    --------
    >>> LSTMRecommender(LSTMConfig(d_model=16)).config.n_layers
    1
    """

    Config = LSTMConfig

    def _build_net(self, in_dim: int, n_static: int) -> nn.Module:
        c = self.config
        return LSTMNet(in_dim, n_static, c.d_model, c.n_layers, c.dropout)
