"""Shared cohort-aware wrapper of the baselines: same inputs, contract and files as SAFER.

Every baseline sees exactly what :class:`~safer.models.SaferRecommender` sees, built by the same
code (:mod:`safer.models._inputs`: :func:`~safer.models._windows.build_windows`, the feature
scaling, the tensor layout and the :class:`~safer.models.encoders.NoteEncoder` with the same disk
cache): per window step the
scaled features, their missing mask and the previous action (one-hot), plus that step's note
embedding when the note may inform the decision (``note_time <= charttime``), else zeros, and a
0/1 "usable note" flag. Notes are thus *added* to the structured input, as the SAFER paper did
for baselines without native text handling. A subclass only supplies its network
(:meth:`BaselineRecommender._build_net`) and, if not plain cross-entropy, its loss.

The network of a baseline maps ``(x (B, H, in_dim), pad (B, H), static (B, n_static))`` to
``(logits (B, 25), z (B, d_model))``; the current decision is the last window position.

``uncertainty`` is the predictive entropy of the 25-way distribution divided by ``log 25``, so it
lies in [0, 1]: the baselines have no survivor head, so SAFER's deceased-label ``kappa`` does not
exist for them; entropy is the usual model-agnostic score that the conformal gate can select on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import nn

import safer
from safer._device import move
from safer._learnable import ArtifactError
from safer.actions import N_ACTIONS
from safer.cohorts.schema import STATIC
from safer.errors import SaferError
from safer.models._base import WindowModel
from safer.models._inputs import N_STRUCT, batch, window_steps

__all__ = ["BaselineConfig", "BaselineRecommender", "step_inputs"]


@dataclass
class BaselineConfig:
    """Hyperparameters every baseline shares (a model's own config subclasses this).

    Examples
    --------
    >>> BaselineConfig(d_model=16).history
    8
    """

    seed: int = 0
    history: int = 8  # steps of history per decision (4 h each), as SAFER
    d_model: int = 32
    dropout: float = 0.1
    use_notes: bool = True
    note_dropout: float = 0.3  # as SAFER: dropout on note embeddings
    # maximum; early stopping on a validation part of the training stays. At 600 stays the
    # validation loss of LSTM and RETAIN still fell at epoch 12 (SAFER's value), so 40.
    epochs: int = 40
    patience: int = 3
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.15
    note_encoder: str | None = None  # local HF folder; None = all-MiniLM-L6-v2
    note_unit: str = "sentence"
    # the shared input pipeline (safer.models._inputs) reads these; baselines add one
    # averaged note vector per step
    note_pool: str = "mean"
    max_sentences: int = 16
    note_max_length: int = 128
    cache_dir: str | None = None

    def check(self) -> None:
        """Raise :class:`SaferError` on values that cannot train."""
        problems = [
            f"{name} must be >= 1"
            for name in ("history", "d_model", "batch_size", "epochs")
            if getattr(self, name) < 1
        ]
        if not 0.0 < self.val_fraction < 1.0:
            problems.append("val_fraction must be in (0, 1)")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.note_dropout < 1.0:
            problems.append("dropout and note_dropout must be in [0, 1)")
        problems += self._extra_problems()
        if problems:
            raise SaferError(f"invalid {type(self).__name__}: " + "; ".join(problems))

    def _extra_problems(self) -> list[str]:
        return []


def step_inputs(struct, notes, note_pad) -> torch.Tensor:
    """Per-step input: structured row, note embedding (zeros if unusable), usable-note flag.

    ``struct`` (B, H, n_struct), ``notes`` (B, H, e), ``note_pad`` (B, H) True = no usable note;
    returns (B, H, n_struct + e + 1).
    """
    flag = (~note_pad).unsqueeze(-1).to(struct.dtype)  # (B, H, 1)
    return torch.cat([struct, notes, flag], dim=-1)


class BaselineRecommender(WindowModel):
    """Base class: fit / predict_proba / uncertainty / embed / save / load for one network.

    Subclasses set ``Config`` and implement ``_build_net(in_dim, n_static)``; they may override
    ``_loss(data, idx)`` (SRL-RNN adds its RL term there).

    Examples
    --------
    A new baseline is its network: ``(x, pad, static) -> (logits (B, 25), z (B, d))``.

    >>> class LastStepNet(nn.Module):
    ...     def __init__(self, in_dim, n_static):
    ...         super().__init__()
    ...         self.body, self.head = nn.Linear(in_dim + n_static, 8), nn.Linear(8, 25)
    ...     def forward(self, x, pad, static):
    ...         z = self.body(torch.cat([x[:, -1], static], dim=-1))  # (B, 8)
    ...         return self.head(z), z
    >>> class LastStep(BaselineRecommender):
    ...     def _build_net(self, in_dim, n_static):
    ...         return LastStepNet(in_dim, n_static)
    >>> from safer.cohorts import simulate_cohort
    >>> cohort = simulate_cohort(n_stays=20, seed=0, progress=False)
    >>> model = LastStep(BaselineConfig(use_notes=False, epochs=1)).fit(cohort)
    >>> model.predict_proba(cohort).shape == (len(cohort), 25), model.embed(cohort).shape[1]
    (True, 8)
    """

    Config: ClassVar[type[BaselineConfig]] = BaselineConfig
    # True: the network's forward also takes ``steps`` (B, H), each window position's step
    reads_steps: ClassVar[bool] = False

    # -------------------------------------------------------------------------- hooks
    def _build_net(self, in_dim: int, n_static: int) -> nn.Module:
        raise NotImplementedError

    def _loss(self, data: dict[str, torch.Tensor], idx: np.ndarray) -> torch.Tensor:
        logits, _ = self._forward(data, idx)
        return F.cross_entropy(logits, data["y"][torch.as_tensor(idx)])

    def _add_episode_info(self, data: dict, cohort: pd.DataFrame, windows) -> None:
        """Hook for models that need stay outcomes (SRL-RNN); the default needs none."""

    # ---------------------------------------------------------------------------- fit
    def _fit(self, cohort: pd.DataFrame, progress: bool) -> None:
        """Train on the training stays; a stay-level validation part (``val_fraction``,
        stratified by death) is held out for early stopping."""
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        windows, data, is_val, usable = self._prepare(cohort, rng, progress)
        self._add_episode_info(data, cohort, windows)
        data = move(data, self._train_device)  # what the hook added, too
        tr, va = np.flatnonzero(usable & ~is_val), np.flatnonzero(usable & is_val)
        self.net_ = self._new_net()
        self.history_ = {
            "train": self._epochs(
                self.net_,
                lambda idx: self._loss(data, idx),
                tr,
                va,
                rng,
                epochs=cfg.epochs,
                lr=cfg.lr,
                desc=f"train {type(self).__name__}",
                progress=progress,
            )  # fmt: skip
        }

    def _new_net(self) -> nn.Module:
        in_dim = N_STRUCT + self._encoder_dim + 1
        return self._build_net(in_dim, len(STATIC))

    def _forward(self, data, idx) -> tuple[torch.Tensor, torch.Tensor]:
        struct, struct_pad, notes, note_pad, static, _ = batch(data, idx)  # mean-pooled notes
        if self.config.use_notes:
            notes = self._note_drop(notes)
        x = step_inputs(struct, notes, note_pad)
        if self.reads_steps:  # time-aware networks: each window position's step (B, H)
            return self.net_(x, struct_pad, static, steps=window_steps(data, idx))
        return self.net_(x, struct_pad, static)

    def _note_drop(self, notes: torch.Tensor) -> torch.Tensor:
        p = self.config.note_dropout
        return F.dropout(notes, p=p, training=self.net_.training) if p > 0 else notes

    # ------------------------------------------------------------------------ predict
    def predict_proba(self, cohort: pd.DataFrame) -> np.ndarray:
        """Probabilities over the 25 actions, shape (n_rows, 25), rows in input order.

        Row ``i`` uses only rows of its stay with ``step <= step_i`` present in ``cohort`` and
        notes with ``note_time <= charttime_i``; its own ``action`` is never read.
        """
        logits, _ = self._outputs(cohort, self._forward)
        return torch.softmax(logits, dim=-1).numpy()

    def uncertainty(self, cohort: pd.DataFrame) -> np.ndarray:
        """Predictive entropy divided by ``log 25``, in [0, 1], shape (n_rows,)."""
        logits, _ = self._outputs(cohort, self._forward)
        logp = F.log_softmax(logits, dim=-1)
        entropy = -(logp.exp() * logp).sum(-1) / math.log(N_ACTIONS)
        return entropy.clamp(0.0, 1.0).numpy()

    def embed(self, cohort: pd.DataFrame) -> np.ndarray:
        """Representation of each decision (the last hidden state), shape (n_rows, d_model)."""
        return self._outputs(cohort, self._forward)[1].numpy()

    # --------------------------------------------------------------------- save / load
    def _network(self) -> nn.Module:
        return self.net_

    def _restore(self, meta: dict[str, Any]) -> None:
        shapes = meta["shapes"]
        if int(shapes["n_struct"]) != N_STRUCT or int(shapes["n_static"]) != len(STATIC):
            raise ArtifactError(
                "the saved model was trained on another cohort schema; retrain it with this "
                f"version of safer ({safer.__version__})"
            )
        super()._restore(meta)
        self.net_ = self._new_net()
