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

import copy
import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import nn
from tqdm.auto import tqdm

import safer
from safer.actions import N_ACTIONS
from safer.cohorts.schema import STATIC, validate
from safer.errors import NotFittedError, SaferError
from safer.models._common import (
    ModelFileError,
    check_content_hash,
    read_model_files,
    write_model_json,
)
from safer.models._common import ids_hash as _ids_hash
from safer.models._common import stratified_pick as _stratified_pick
from safer.models._inputs import N_STRUCT, InputPipeline, batch, window_steps
from safer.models._windows import build_windows

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


class BaselineRecommender(InputPipeline):
    """Base class: fit / predict_proba / uncertainty / embed / save / load for one network.

    Subclasses set ``Config`` and implement ``_build_net(in_dim, n_static)``; they may override
    ``_loss(data, idx)`` (SRL-RNN adds its RL term there).
    """

    Config: ClassVar[type[BaselineConfig]] = BaselineConfig
    # True: the network's forward also takes ``steps`` (B, H), each window position's step
    reads_steps: ClassVar[bool] = False

    def __init__(self, config: BaselineConfig | None = None):
        self.config = config if config is not None else self.Config()

    # -------------------------------------------------------------------------- hooks
    def _build_net(self, in_dim: int, n_static: int) -> nn.Module:
        raise NotImplementedError

    def _loss(self, data: dict[str, torch.Tensor], idx: np.ndarray) -> torch.Tensor:
        logits, _ = self._forward(data, idx)
        return F.cross_entropy(logits, data["y"][torch.as_tensor(idx)])

    # ---------------------------------------------------------------------------- fit
    def fit(
        self, cohort: pd.DataFrame, *, progress: bool = True, split_seed: int | None = None
    ) -> BaselineRecommender:
        """Train on ``cohort`` (training stays only; validated first); returns ``self``.

        A stay-level validation part (``val_fraction``, stratified by death) of ``cohort`` is
        held out for early stopping. ``split_seed`` is saved so ``safer evaluate`` can recompute
        the same splits.
        """
        cfg = self.config
        cfg.check()
        validate(cohort)
        self.split_seed_ = split_seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self._fit(cohort, progress)
        return self

    def _fit(self, cohort: pd.DataFrame, progress: bool) -> None:
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        died = cohort.groupby("stay_id", sort=True)["died"].first()
        if len(died) < 2:
            raise SaferError("need at least 2 training stays to fit; pass a larger cohort")
        val_stays = _stratified_pick(died, cfg.val_fraction, rng)
        self.train_stays_ = np.sort(cohort["stay_id"].unique()).astype(np.int64)
        self.train_stays_hash_ = _ids_hash(self.train_stays_)

        windows = build_windows(cohort, cfg.history, cfg.use_notes)
        stay_sorted = cohort["stay_id"].to_numpy()[windows.order]
        is_val = np.isin(stay_sorted, val_stays)
        self._learn_scaling(windows, ~is_val)
        self._encoder_dim = self._note_encoder(progress).dim if cfg.use_notes else 1
        data = self._tensors(windows, progress)
        self._add_episode_info(data, cohort, windows)
        usable = data["y"].numpy() >= 0
        tr, va = np.flatnonzero(usable & ~is_val), np.flatnonzero(usable & is_val)
        self.net_ = self._new_net()
        self.history_ = {"train": self._train(data, tr, va, rng, progress)}
        self.net_.eval()
        self.content_hash_ = self._content_hash()

    def _add_episode_info(self, data: dict, cohort: pd.DataFrame, windows) -> None:
        """Hook for models that need stay outcomes (SRL-RNN); the default needs none."""

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

    def _train(self, data, tr, va, rng, progress) -> dict:
        cfg, net = self.config, self.net_
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        best, best_state, bad, record = np.inf, copy.deepcopy(net.state_dict()), 0, []
        name = type(self).__name__
        bar = tqdm(range(cfg.epochs), desc=f"train {name}", unit="epoch", disable=not progress)
        for _ in bar:
            net.train()
            total = 0.0
            order = rng.permutation(tr)
            for s in range(0, len(order), cfg.batch_size):
                idx = order[s : s + cfg.batch_size]
                loss = self._loss(data, idx)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            val = self._evaluate_loss(data, va if len(va) else tr)
            record.append({"train": total / max(len(tr), 1), "val": val})
            bar.set_postfix(val=f"{val:.3f}")
            if val < best - 1e-4:
                best, best_state, bad = val, copy.deepcopy(net.state_dict()), 0
            else:
                bad += 1
                if bad >= cfg.patience:
                    break
        net.load_state_dict(best_state)
        return {"epochs": record, "best_val": float(best)}

    def _evaluate_loss(self, data, idx) -> float:
        self.net_.eval()
        total = 0.0
        with torch.no_grad():
            for s in range(0, len(idx), 1024):
                part = idx[s : s + 1024]
                total += float(self._loss(data, part)) * len(part)
        return total / max(len(idx), 1)

    # ------------------------------------------------------------------------ predict
    def predict_proba(self, cohort: pd.DataFrame) -> np.ndarray:
        """Probabilities over the 25 actions, shape (n_rows, 25), rows in input order.

        Row ``i`` uses only rows of its stay with ``step <= step_i`` present in ``cohort`` and
        notes with ``note_time <= charttime_i``; its own ``action`` is never read.
        """
        logits, _ = self._outputs(cohort)
        return torch.softmax(logits, dim=-1).numpy()

    def uncertainty(self, cohort: pd.DataFrame) -> np.ndarray:
        """Predictive entropy divided by ``log 25``, in [0, 1], shape (n_rows,)."""
        logits, _ = self._outputs(cohort)
        logp = F.log_softmax(logits, dim=-1)
        entropy = -(logp.exp() * logp).sum(-1) / math.log(N_ACTIONS)
        return entropy.clamp(0.0, 1.0).numpy()

    def embed(self, cohort: pd.DataFrame) -> np.ndarray:
        """Representation of each decision (the last hidden state), shape (n_rows, d_model)."""
        return self._outputs(cohort)[1].numpy()

    def _outputs(self, cohort: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_fitted()
        windows = build_windows(cohort, self.config.history, self.config.use_notes)
        data = self._tensors(windows, progress=False)
        self.net_.eval()
        logits, z = [], []
        with torch.no_grad():
            n = len(data["y"])
            for s in range(0, n, 1024):
                out = self._forward(data, np.arange(s, min(s + 1024, n)))
                logits.append(out[0])
                z.append(out[1])
        inverse = torch.from_numpy(np.argsort(windows.order))
        return torch.cat(logits)[inverse], torch.cat(z)[inverse]

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            name = type(self).__name__
            raise NotFittedError(
                f"this {name} is not fitted yet: call fit first (or {name}.load(dir))"
            )

    # --------------------------------------------------------------------- save / load
    def save(self, directory: str | Path) -> Path:
        """Write ``model.json`` (config, scaling, hashes, version) and ``weights.pt``."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.net_.state_dict(), directory / "weights.pt")
        return write_model_json(directory, self._metadata(), self.content_hash_)

    @classmethod
    def load(cls, directory: str | Path) -> BaselineRecommender:
        """Load a model written by :meth:`save`; needs no data. Checks the content hash."""
        meta, weights_path = read_model_files(
            directory, "weights.pt", f"a saved {cls.__name__} (needs model.json and weights.pt); "
            "train one with `safer train --variant NAME --out DIR`",
        )  # fmt: skip
        if meta.get("model") != cls.__name__:
            raise ModelFileError(
                f"{Path(directory) / 'model.json'} holds a {meta.get('model')!r}, "
                f"not a {cls.__name__}; load it with safer.models.load_model"
            )
        known = {f.name for f in fields(cls.Config)}
        model = cls(cls.Config(**{k: v for k, v in meta["config"].items() if k in known}))
        model._restore(meta)
        model.net_.load_state_dict(torch.load(weights_path, weights_only=True))
        model.net_.eval()
        model.content_hash_ = model._content_hash()
        check_content_hash(directory, model.content_hash_, meta)
        return model

    def _metadata(self) -> dict[str, Any]:
        return {
            "model": type(self).__name__,
            "safer_version": safer.__version__,
            "config": asdict(self.config),
            "shapes": {
                "n_struct": N_STRUCT,
                "n_static": len(STATIC),
                "note_dim": self._encoder_dim,
            },
            "scaling": self._scaling_metadata(),
            "train_stays": self.train_stays_.tolist(),
            "train_stays_hash": self.train_stays_hash_,
            "split_seed": self.split_seed_,
            "history": self.history_,
        }

    def _restore(self, meta: dict[str, Any]) -> None:
        shapes = meta["shapes"]
        if int(shapes["n_struct"]) != N_STRUCT or int(shapes["n_static"]) != len(STATIC):
            raise ModelFileError(
                "the saved model was trained on another cohort schema; retrain it with this "
                f"version of safer ({safer.__version__})"
            )
        self._encoder_dim = int(shapes["note_dim"])
        self._restore_scaling(meta["scaling"])
        self.train_stays_ = np.asarray(meta["train_stays"], dtype=np.int64)
        self.train_stays_hash_ = meta["train_stays_hash"]
        self.split_seed_ = meta.get("split_seed")
        self.history_ = meta.get("history", {})
        self.net_ = self._new_net()

    def _content_hash(self) -> str:
        h = hashlib.sha256()
        for name, tensor in sorted(self.net_.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        meta = self._metadata()
        meta.pop("history")
        h.update(json.dumps(meta, sort_keys=True).encode())
        return h.hexdigest()
