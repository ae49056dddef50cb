"""TAHDNet-style baseline: a time-aware, hierarchical network over each decision's history.

TAHDNet (Su, Shi, Lee, Cheng, Guo, "TAHDNet: Time-aware hierarchical dependency network for
medication recommendation", J. Biomed. Inform. 2022, doi:10.1016/j.jbi.2022.104069) released no
code. This is **not the authors' model**: it is a "-style" baseline written from the paper's
description, keeping its two ideas and fitting them to SAFER's 4-hourly ICU windows.

Kept
    *Hierarchy*: a low level inside each step and a high level across steps.
    *Time awareness*: the elapsed time between steps discounts what the network carries forward,
    and a temporal decay enters the attention that pools the steps.

How it reads a window
    1. Low level, per step: the input columns are split into clinical groups
       (:func:`feature_groups`: patient, vitals, labs, treatment, notes); each group (its scaled
       values and missing flags) is embedded by its own layer; an additive attention weighs the
       groups (the notes group only when the step has a usable note), and the weighted group
       embeddings, concatenated and projected, give the step vector.
    2. High level, across steps: a time-aware LSTM (T-LSTM, Baytas et al. KDD 2017) splits the
       cell memory into a short-term part, discounted by ``exp(-rate * dt)`` with one learned
       rate per unit, and a long-term part kept whole; ``dt`` is the number of 4-hour steps since
       the previous present row of the stay (1 for consecutive rows, more where rows are absent).
    3. Attention over the step states, with a time-decay prior: the score of a step is an
       additive-attention score minus ``lambda * age`` (``age`` = steps before the decision,
       ``lambda >= 0`` learned), softmax over the window's present steps.
    4. The attended context plus the last state plus the static patient data -> 25-way head.

Simplified
    No self-supervised Transformer pre-training of a global record encoder and no 1D-CNN over
    visits (TAHDNet's global / local dependency modules): a window here is at most ``history``
    steps, and SAFER's inputs are dense vitals and labs rather than sets of medical codes. The
    paper's fused decay function (several decay shapes mixed by key-value attention) is reduced
    to one learned exponential decay in the memory and one learned linear-in-age prior in the
    attention. Notes enter as one more feature group (the averaged note embedding and the
    usable-note flag), as the SAFER paper added text to baselines without native text handling.

Examples
--------
>>> from safer.cohorts import simulate_cohort
>>> from safer.models.baselines import TAHDNetConfig, TAHDNetRecommender
>>> cohort = simulate_cohort(n_stays=40, seed=0, progress=False)
>>> model = TAHDNetRecommender(TAHDNetConfig(use_notes=False, epochs=1)).fit(cohort, progress=False)
>>> model.predict_proba(cohort).shape == (len(cohort), 25)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from safer.actions import N_ACTIONS
from safer.cohorts.schema import FEATURES
from safer.errors import SaferError
from safer.models._inputs import N_STRUCT
from safer.models.baselines._base import BaselineConfig, BaselineRecommender

__all__ = [
    "FEATURE_GROUPS",
    "feature_groups",
    "TimeAwareLSTMCell",
    "TAHDNetNet",
    "TAHDNetConfig",
    "TAHDNetRecommender",
]

# Clinical groups of the 47 features (every feature in exactly one group). The previous action
# joins "treatment"; the note embedding and its usable-note flag form "notes".
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "patient": ("gender", "re_admission", "age", "Weight_kg"),
    "vitals": (
        "mechvent", "GCS", "HR", "SysBP", "MeanBP", "DiaBP", "RR", "Temp_C", "FiO2_1", "SpO2",
        "Shock_Index", "SOFA", "SIRS",
    ),
    "labs": (
        "Potassium", "Sodium", "Chloride", "Glucose", "Magnesium", "Calcium", "Hb", "WBC_count",
        "Platelets_count", "PTT", "PT", "Arterial_pH", "paO2", "paCO2", "Arterial_BE", "HCO3",
        "Arterial_lactate", "PaO2_FiO2", "BUN", "Creatinine", "SGOT", "SGPT", "Total_bili", "INR",
    ),
    "treatment": (
        "max_dose_vaso", "cumulated_balance", "input_total", "input_4hourly", "output_total",
        "output_4hourly",
    ),
}  # fmt: skip


def feature_groups(in_dim: int) -> dict[str, np.ndarray]:
    """Column indices of each group in a step input of width ``in_dim``.

    The step input is ``[scaled features (47) | missing mask (47) | previous action (25) |
    note embedding (e) | usable-note flag (1)]`` (see
    :func:`safer.models.baselines._base.step_inputs`), so ``e = in_dim - 120``. A feature's value
    and its missing flag go to the feature's group; the previous action to ``treatment``; the note
    embedding and flag to ``notes`` (always the last group).

    Examples
    --------
    >>> groups = feature_groups(N_STRUCT + 8 + 1)
    >>> list(groups), int(sum(len(g) for g in groups.values()))
    (['patient', 'vitals', 'labs', 'treatment', 'notes'], 128)
    """
    if in_dim < N_STRUCT + 2:
        raise SaferError(
            f"a TAHDNet step input needs at least {N_STRUCT + 2} columns (structured row, one "
            f"note column and the note flag), got {in_dim}; build it with step_inputs()"
        )
    n = len(FEATURES)
    position = {name: i for i, name in enumerate(FEATURES)}
    groups = {
        group: np.array([position[f] for f in names] + [n + position[f] for f in names])
        for group, names in FEATURE_GROUPS.items()
    }
    groups["treatment"] = np.concatenate([groups["treatment"], np.arange(2 * n, N_STRUCT)])
    groups["notes"] = np.arange(N_STRUCT, in_dim)
    return groups


class GroupAttention(nn.Module):
    """Low level: per-group embeddings of one step, pooled by additive attention.

    Each group is scored by additive attention (softmax over the groups present); the weighted
    group embeddings are concatenated and projected to the step vector.
    ``x`` (B, H, in_dim), ``note_ok`` (B, H) -> step vectors (B, H, d), weights (B, H, G).
    """

    def __init__(self, in_dim: int, d_model: int):
        super().__init__()
        groups = feature_groups(in_dim)
        for i, cols in enumerate(groups.values()):
            self.register_buffer(f"cols_{i}", torch.as_tensor(cols, dtype=torch.long))
        self.n_groups = len(groups)
        self.embed = nn.ModuleList(nn.Linear(len(cols), d_model) for cols in groups.values())
        self.score = nn.Sequential(nn.Linear(d_model, d_model), nn.Tanh(), nn.Linear(d_model, 1))
        # the weighted groups are concatenated, not averaged, so that one group's weight scales
        # its own contribution without mixing it into the others' dimensions
        self.out = nn.Linear(self.n_groups * d_model, d_model)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x, note_ok):
        e = torch.stack(
            [
                torch.relu(layer(x[..., getattr(self, f"cols_{i}")]))
                for i, layer in enumerate(self.embed)
            ],
            dim=-2,
        )  # (B, H, G, d)
        present = torch.ones(e.shape[:-1], dtype=torch.bool, device=x.device)  # (B, H, G)
        present[..., -1] = note_ok  # the notes group only counts when a note is usable
        score = self.score(e).squeeze(-1).masked_fill(~present, float("-inf"))  # (B, H, G)
        weights = torch.softmax(score, dim=-1)  # (B, H, G)
        weighted = (weights.unsqueeze(-1) * e).flatten(-2)  # (B, H, G * d)
        return self.norm(self.out(weighted)), weights  # (B, H, d), (B, H, G)


class TimeAwareLSTMCell(nn.Module):
    """T-LSTM cell (Baytas et al. 2017) with a learned exponential decay of short-term memory.

    Before the usual LSTM update, the memory ``c`` is split into a short-term part
    ``c_s = tanh(W_d c)`` (the paper's bias ``b_d`` dropped, so an empty memory stays empty)
    and the rest; the short-term part is multiplied by
    ``exp(-rate * dt)`` (``rate = softplus(theta) > 0``, one per unit), so a longer gap since the
    previous step forgets more of it.

    Examples
    --------
    >>> cell = TimeAwareLSTMCell(4, 8)
    >>> h, c = cell(torch.zeros(2, 4), torch.ones(2), (torch.zeros(2, 8), torch.ones(2, 8)))
    >>> tuple(h.shape), tuple(c.shape)
    ((2, 8), (2, 8))
    """

    def __init__(self, in_dim: int, d_model: int):
        super().__init__()
        self.cell = nn.LSTMCell(in_dim, d_model)
        # no bias: an empty memory has no short-term part, so a gap before the first row is inert
        self.short_term = nn.Linear(d_model, d_model, bias=False)
        self.log_rate = nn.Parameter(torch.zeros(d_model))  # softplus(0) = 0.69 per step

    def forward(self, x, dt, state):
        """``x`` (B, in_dim), ``dt`` (B,) steps since the previous row, ``state`` (h, c)."""
        h, c = state
        short = torch.tanh(self.short_term(c))  # (B, d)
        decay = torch.exp(-nn.functional.softplus(self.log_rate) * dt.unsqueeze(-1))  # (B, d)
        c = c - short + short * decay  # long-term memory kept, short-term discounted
        return self.cell(x, (h, c))


class TAHDNetNet(nn.Module):
    """``x`` (B, H, in_dim), ``pad`` (B, H), ``static`` (B, s), ``steps`` (B, H) -> logits, z.

    ``steps`` holds each window position's step index (any value at padding); without it the
    window's present rows are taken as consecutive steps (every ``dt = 1``).
    """

    def __init__(self, in_dim: int, n_static: int, d_model: int, dropout: float):
        super().__init__()
        self.groups = GroupAttention(in_dim, d_model)
        self.drop = nn.Dropout(dropout)
        self.rnn = TimeAwareLSTMCell(d_model, d_model)
        self.score = nn.Sequential(nn.Linear(d_model, d_model), nn.Tanh(), nn.Linear(d_model, 1))
        self.log_age_decay = nn.Parameter(torch.zeros(()))  # lambda = softplus(.) >= 0
        self.static_proj = nn.Linear(n_static, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, N_ACTIONS)

    def attention(self, x, pad, steps=None):
        """States (B, H, d), group weights (B, H, G) and step weights (B, H) of a window."""
        if steps is None:
            steps = torch.cumsum((~pad).to(x.dtype), dim=1)  # (B, H) consecutive present rows
        steps = steps.to(x.dtype).masked_fill(pad, 0.0)
        # the last note column is the usable-note flag (step_inputs)
        v, group_w = self.groups(x, x[..., -1] > 0.5)  # (B, H, d), (B, H, G)
        v = self.drop(v)
        batch, history, d = v.shape
        h = c = v.new_zeros(batch, d)
        prev = steps[:, 0]  # (B,) step of the previous present row
        states = []
        for t in range(history):
            present = ~pad[:, t]  # (B,)
            dt = (steps[:, t] - prev).clamp(min=0.0)  # (B,); acts on no memory before a row
            h_new, c_new = self.rnn(v[:, t], dt, (h, c))
            keep = present.unsqueeze(-1)  # padding steps leave the state unchanged
            h, c = torch.where(keep, h_new, h), torch.where(keep, c_new, c)
            prev = torch.where(present, steps[:, t], prev)
            states.append(h)
        states = torch.stack(states, dim=1)  # (B, H, d)
        age = (steps[:, -1:] - steps).clamp(min=0.0)  # (B, H) steps before the decision
        lam = nn.functional.softplus(self.log_age_decay)
        score = self.score(states).squeeze(-1) - lam * age  # (B, H)
        step_w = torch.softmax(score.masked_fill(pad, float("-inf")), dim=-1)  # (B, H)
        return states, group_w, step_w

    def forward(self, x, pad, static, steps=None):
        states, _, step_w = self.attention(x, pad, steps)
        context = (step_w.unsqueeze(-1) * states).sum(1)  # (B, d)
        z = self.norm(context + states[:, -1] + self.static_proj(static))  # (B, d)
        return self.head(self.drop(z)), z


@dataclass
class TAHDNetConfig(BaselineConfig):
    """:class:`BaselineConfig` (no extra hyperparameters: the decay rates are learned).

    Examples
    --------
    >>> from safer.models import make_model
    >>> config = make_model("tahdnet", history=12, d_model=16).config
    >>> type(config).__name__, config.history, config.d_model
    ('TAHDNetConfig', 12, 16)
    """


class TAHDNetRecommender(BaselineRecommender):
    """TAHDNet-style model over the history window (contract of :class:`BaselineRecommender`).

    Like ``hstu``, it reads each window row's ``step`` (``reads_steps``), so gaps between present
    rows (rows absent from the frame) lengthen the elapsed time the network discounts.

    Examples
    --------
    >>> TAHDNetRecommender(TAHDNetConfig(d_model=16)).config.d_model
    16
    """

    Config = TAHDNetConfig
    reads_steps = True

    def _build_net(self, in_dim: int, n_static: int) -> nn.Module:
        c = self.config
        return TAHDNetNet(in_dim, n_static, c.d_model, c.dropout)
