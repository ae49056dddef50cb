"""SASRec and HSTU of :mod:`safer.seqrec` as DTR baselines: next-action models over treatment
histories.

The bridge between the two halves of the toolkit: the *same* encoder classes that rank items in
:mod:`safer.seqrec` (:class:`~safer.seqrec.encoders.sasrec.SASRecNet`,
:class:`~safer.seqrec.encoders.hstu.HSTUNet`, built from their own config dataclasses, run through
their own ``encode``) read each decision's history window here. Nothing of their layers is
re-implemented.

The token of window step ``t`` is

* the previous action, embedded like an item by the encoder's own item table (ids ``1..25`` =
  actions, ``26`` = "no previous action" at a stay's first step, ``0`` = padding), plus
* a linear projection of the step's inputs, the same every baseline gets (scaled features,
  missing mask, previous action one-hot, note embedding, usable-note flag), plus
* a linear projection of the static patient data.

The encoder runs causally (a step attends to itself and earlier present steps) over the
right-aligned window, so its last position is the current decision; a head on that position gives
the 25 logits. HSTU's time input is each window row's step times 4 h (a cohort row is one 4 h
step), so a stay with rows absent from the frame is seen with its gaps; SASRec reads positions
only.

Examples
--------
>>> from safer.cohorts import simulate_cohort
>>> from safer.models.baselines import HSTUDTR, HSTUDTRConfig
>>> cohort = simulate_cohort(n_stays=40, seed=0, progress=False)
>>> model = HSTUDTR(HSTUDTRConfig(use_notes=False, epochs=1)).fit(cohort, progress=False)
>>> model.predict_proba(cohort).shape == (len(cohort), 25)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from safer.actions import N_ACTIONS
from safer.cohorts.schema import STEP_HOURS
from safer.models._inputs import N_STRUCT
from safer.models.baselines._base import BaselineConfig, BaselineRecommender
from safer.seqrec.encoders.hstu import HSTUConfig, HSTUNet
from safer.seqrec.encoders.sasrec import SASRecConfig, SASRecNet

__all__ = [
    "NextActionNet",
    "action_tokens",
    "SASRecDTRConfig",
    "SASRecDTR",
    "HSTUDTRConfig",
    "HSTUDTR",
]

NO_PREVIOUS = N_ACTIONS + 1  # token of a stay's first step; actions are 1..25, 0 = padding
# the previous action one-hot is the last block of the shared structured row
_PREVIOUS_ACTION = slice(N_STRUCT - N_ACTIONS, N_STRUCT)


def action_tokens(x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """Item ids of the previous actions of a window: (B, H) long, as the encoders' item table.

    ``x`` (B, H, in_dim) are the baselines' step inputs (structured row first), ``pad`` (B, H)
    True at padding. Action ``a`` -> ``a + 1``; no previous action -> ``26``; padding -> ``0``.

    Examples
    --------
    >>> x = torch.zeros(1, 3, N_STRUCT + 1)
    >>> x[0, 2, N_STRUCT - N_ACTIONS + 7] = 1.0  # previous action 7 at the last step
    >>> action_tokens(x, torch.tensor([[True, False, False]])).tolist()
    [[0, 26, 8]]
    """
    onehot = x[..., _PREVIOUS_ACTION]  # (B, H, 25)
    has_previous = onehot.sum(-1) > 0  # (B, H)
    tokens = torch.where(has_previous, onehot.argmax(-1) + 1, NO_PREVIOUS)  # (B, H)
    return tokens.masked_fill(pad, 0)


class NextActionNet(nn.Module):
    """A seqrec encoder over embedded treatment histories, with a 25-action head.

    ``x`` (B, H, in_dim), ``pad`` (B, H), ``static`` (B, s) -> logits (B, 25), z (B, d). The
    ``encoder`` is any :mod:`safer.seqrec` net with ``embed_items(item_seq)`` and
    ``encode(x, valid, time_seq)`` (``SASRecNet``, ``HSTUNet``) built for ``N_ACTIONS + 1``
    items and ``max_len >= H``.

    Examples
    --------
    >>> encoder = SASRecNet(N_ACTIONS + 1, SASRecConfig(max_len=4, hidden_size=8, n_layers=1))
    >>> net = NextActionNet(encoder, in_dim=N_STRUCT + 2, n_static=4, d_model=8, dropout=0.0)
    >>> logits, z = net(torch.zeros(2, 4, N_STRUCT + 2), torch.zeros(2, 4, dtype=torch.bool),
    ...                 torch.zeros(2, 4))
    >>> tuple(logits.shape), tuple(z.shape)
    ((2, 25), (2, 8))
    """

    def __init__(self, encoder: nn.Module, in_dim: int, n_static: int, d_model: int,
                 dropout: float):  # fmt: skip
        super().__init__()
        self.encoder = encoder
        self.step_proj = nn.Linear(in_dim, d_model)
        self.static_proj = nn.Linear(n_static, d_model)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, N_ACTIONS)

    def forward(self, x, pad, static, steps=None):
        B, H = pad.shape
        tokens = self.encoder.embed_items(action_tokens(x, pad))  # (B, H, d)
        tokens = tokens + self.step_proj(x) + self.static_proj(static)[:, None]  # (B, H, d)
        if steps is None:  # window positions as consecutive steps
            steps = torch.arange(H, device=x.device, dtype=x.dtype).expand(B, H)
        hours = steps.to(x.dtype) * STEP_HOURS  # (B, H)
        h = self.encoder.encode(tokens, ~pad, hours)  # (B, H, d)
        z = h[:, -1]  # (B, d): the current decision, never padding (right-aligned window)
        return self.head(self.drop(z)), z


@dataclass
class SASRecDTRConfig(BaselineConfig):
    """:class:`BaselineConfig` plus SASRec's layers and heads (inner size ``4 * d_model``,
    RecBole's ratio; ``dropout`` is both hidden and attention dropout).

    Examples
    --------
    >>> SASRecDTRConfig().n_layers
    2
    """

    n_heads: int = 2
    n_layers: int = 2

    def _extra_problems(self) -> list[str]:
        problems = [f"{n} must be >= 1" for n in ("n_heads", "n_layers") if getattr(self, n) < 1]
        if not problems and self.d_model % self.n_heads:
            problems.append(f"d_model ({self.d_model}) must be divisible by n_heads")
        return problems

    def encoder_config(self) -> SASRecConfig:
        """The :class:`~safer.seqrec.encoders.sasrec.SASRecConfig` of the shared encoder."""
        return SASRecConfig(
            max_len=self.history, n_layers=self.n_layers, n_heads=self.n_heads,
            hidden_size=self.d_model, inner_size=4 * self.d_model,
            hidden_dropout=self.dropout, attn_dropout=self.dropout,
        )  # fmt: skip


class SASRecDTR(BaselineRecommender):
    """SASRec (seqrec's encoder) as a next-action DTR baseline (contract of
    :class:`BaselineRecommender`; registry name ``sasrec``).

    Examples
    --------
    >>> from safer.models import make_model
    >>> type(make_model("sasrec", d_model=16).config).__name__
    'SASRecDTRConfig'
    """

    Config = SASRecDTRConfig

    def _build_net(self, in_dim: int, n_static: int) -> nn.Module:
        c = self.config
        encoder = SASRecNet(N_ACTIONS + 1, c.encoder_config())
        return NextActionNet(encoder, in_dim, n_static, c.d_model, c.dropout)


@dataclass
class HSTUDTRConfig(BaselineConfig):
    """:class:`BaselineConfig` plus HSTU's layers, heads, per-head attention width and time
    buckets (a window of 8 steps spans at most 28 h: bucket 11 of the log scale).

    Examples
    --------
    >>> HSTUDTRConfig().attention_dim
    16
    """

    n_heads: int = 2
    n_layers: int = 2
    attention_dim: int = 16
    n_time_buckets: int = 16

    def _extra_problems(self) -> list[str]:
        names = ("n_heads", "n_layers", "attention_dim", "n_time_buckets")
        return [f"{n} must be >= 1" for n in names if getattr(self, n) < 1]

    def encoder_config(self) -> HSTUConfig:
        """The :class:`~safer.seqrec.encoders.hstu.HSTUConfig` of the shared encoder."""
        return HSTUConfig(
            max_len=self.history, n_layers=self.n_layers, n_heads=self.n_heads,
            hidden_size=self.d_model, attention_dim=self.attention_dim, dropout=self.dropout,
            n_time_buckets=self.n_time_buckets,
        )  # fmt: skip


class HSTUDTR(BaselineRecommender):
    """HSTU (seqrec's encoder) as a next-action DTR baseline (contract of
    :class:`BaselineRecommender`; registry name ``hstu``).

    Examples
    --------
    >>> from safer.models import make_model
    >>> make_model("hstu", n_layers=1).config.n_layers
    1
    """

    Config = HSTUDTRConfig
    reads_steps = True  # time = each window row's step x 4 h: gaps (absent rows) are seen

    def _build_net(self, in_dim: int, n_static: int) -> nn.Module:
        c = self.config
        encoder = HSTUNet(N_ACTIONS + 1, c.encoder_config())
        return NextActionNet(encoder, in_dim, n_static, c.d_model, c.dropout)
