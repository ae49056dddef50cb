"""Behaviour-cloning MLP: the clinician's action from the current step alone.

Behaviour cloning as in offline-RL benchmarks: supervised imitation of the logged action with no
history beyond what the current row carries (its features, missing mask, previous action, and
its note embedding when usable) and the static patient data. The window is built as for the
other models but only its last position is read, so ``history`` has no effect on the outputs.

Examples
--------
>>> from safer.cohorts import simulate_cohort
>>> from safer.models.baselines import BCMLPConfig, BCMLPRecommender
>>> cohort = simulate_cohort(n_stays=40, seed=0, progress=False)
>>> model = BCMLPRecommender(BCMLPConfig(use_notes=False, epochs=1)).fit(cohort, progress=False)
>>> bool(abs(model.predict_proba(cohort).sum(axis=1) - 1).max() < 1e-5)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from safer.actions import N_ACTIONS
from safer.models.baselines._base import BaselineConfig, BaselineRecommender

__all__ = ["BCMLPNet", "BCMLPConfig", "BCMLPRecommender"]


class BCMLPNet(nn.Module):
    """``x`` (B, H, in_dim), ``pad``, ``static`` (B, s) -> logits, z; uses x[:, -1]."""

    def __init__(self, in_dim: int, n_static: int, d_model: int, n_layers: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim + n_static
        for _ in range(n_layers):
            layers += [nn.Linear(width, d_model), nn.GELU(), nn.Dropout(dropout)]
            width = d_model
        self.body = nn.Sequential(*layers[:-1])  # the last dropout is applied before the head
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, N_ACTIONS)

    def forward(self, x, pad, static):
        z = self.body(torch.cat([x[:, -1], static], dim=-1))  # (B, d): current step only
        return self.head(self.drop(z)), z


@dataclass
class BCMLPConfig(BaselineConfig):
    """:class:`BaselineConfig` plus the number of hidden layers (``history`` is unused).

    Examples
    --------
    >>> BCMLPRecommender(BCMLPConfig(n_layers=3, d_model=16)).config.n_layers
    3
    >>> BCMLPConfig(n_layers=0).check()
    Traceback (most recent call last):
    ...
    safer.errors.SaferError: invalid BCMLPConfig: n_layers must be >= 1
    """

    n_layers: int = 2

    def _extra_problems(self) -> list[str]:
        return ["n_layers must be >= 1"] if self.n_layers < 1 else []


class BCMLPRecommender(BaselineRecommender):
    """Behaviour-cloning MLP on the current step (contract of :class:`BaselineRecommender`).

    Examples
    --------
    >>> BCMLPRecommender().config.n_layers
    2
    """

    Config = BCMLPConfig

    def _build_net(self, in_dim: int, n_static: int) -> nn.Module:
        c = self.config
        return BCMLPNet(in_dim, n_static, c.d_model, c.n_layers, c.dropout)
