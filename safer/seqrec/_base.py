"""The estimator wrapper shared by every sequential recommender, and the training loop.

A model file defines a config dataclass (deriving from :class:`NeuralConfig`), a pure
``nn.Module`` that maps ``(item_seq, time_seq, seq_len)`` to one ``(B, d)`` user vector (and,
for sequence-level training, ``embed_items`` + ``encode`` giving every position's ``(B, T, d)``
state), and a thin subclass of :class:`NeuralRecommender` that builds it. Scores are the dot
products of the user vector with every item embedding (column 0 is padding and is never
recommended).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from safer import __version__
from safer.errors import NotFittedError, SaferError
from safer.seqrec.data import SequenceData
from safer.seqrec.protocol import (
    METRICS,
    Examples,
    ProtocolError,
    Windows,
    check_protocol,
    leave_one_out,
    rank_metrics,
    seen_mask,
    training_windows,
)

__all__ = [
    "TRAININGS",
    "ModelDirError",
    "NeuralConfig",
    "NeuralRecommender",
    "SequenceEncoder",
    "SequentialRecommender",
]

TRAININGS = ("auto", "prefix", "sequence")


class ModelDirError(SaferError, OSError):
    """A model directory is missing, incomplete or was written by another model."""


@dataclass
class NeuralConfig:
    """Training settings shared by every neural model (RecBole's defaults where it has one).

    ``protocol="recbole"`` trains with a full softmax (cross-entropy over every item) and ranks
    seen items; ``"hstu"`` trains with a sampled softmax over ``n_negatives`` uniform negatives and
    removes seen items from the ranking.

    ``training`` chooses what one training example is. ``"prefix"``: every prefix of a user's
    sequence, one loss per forward pass (RecBole's way; batches of ``batch_size`` prefixes).
    ``"sequence"``: the training part of each user's sequence cut into windows of ``max_len``
    (:func:`~safer.seqrec.protocol.training_windows`), with the next-item loss at every real
    position under the causal mask, one forward pass per window (the HSTU / FuXi-alpha papers'
    way; batches of ``sequence_batch_size`` windows). ``"auto"`` (default): ``"prefix"`` for
    ``protocol="recbole"``, ``"sequence"`` for ``protocol="hstu"``. Both see the same targets;
    evaluation is the same leave-one-out last-position scoring either way.
    """

    max_len: int = 50
    epochs: int = 300
    batch_size: int = 2048
    eval_batch_size: int = 4096
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    stopping_step: int = 10
    protocol: str = "recbole"
    n_negatives: int = 128
    seed: int = 2020
    device: str = "cpu"
    training: str = "auto"
    sequence_batch_size: int = 128

    def resolved_training(self) -> str:
        """``"prefix"`` or ``"sequence"``: the training this config runs (``"auto"`` resolved).

        >>> NeuralConfig(protocol="hstu").resolved_training()
        'sequence'
        """
        if self.training not in TRAININGS:
            raise ProtocolError(
                f"unknown training {self.training!r}; use one of {', '.join(TRAININGS)}"
            )
        if self.training != "auto":
            return self.training
        return "sequence" if self.protocol == "hstu" else "prefix"


class SequentialRecommender:
    """Interface of every recommender: ``fit``, ``score``, ``evaluate``, ``save``, ``load``."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = NeuralConfig

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.config_class()

    # -- to implement -------------------------------------------------------------------------
    def fit(self, data: SequenceData, progress: bool = False) -> SequentialRecommender:
        raise NotImplementedError

    def _score_batch(self, batch: Examples) -> torch.Tensor:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------
    @property
    def protocol(self) -> str:
        return getattr(self.config, "protocol", "recbole")

    def _check_fitted(self) -> None:
        if not hasattr(self, "item_tokens_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit first")

    def score(self, examples: Examples) -> np.ndarray:
        """``(N, n_items + 1)`` scores of every item for each example (column 0: padding).

        Raises :class:`~safer.errors.NotFittedError` before ``fit``.
        """
        self._check_fitted()
        size = getattr(self.config, "eval_batch_size", 4096)
        out = [
            self._score_batch(examples.take(np.arange(i, min(i + size, len(examples)))))
            for i in range(0, len(examples), size)
        ]
        if not out:
            return np.zeros((0, len(self.item_tokens_) + 1), np.float32)
        return torch.cat(out).numpy()

    def evaluate(self, data: SequenceData, split: str = "test", k: int = 10) -> dict[str, Any]:
        """HR/NDCG/MRR/Recall@k on the ``split`` examples of ``data`` under the model's protocol.

        Returns a dict with the four metrics, ``protocol`` and ``n_users`` (examples scored).
        """
        self._check_fitted()
        if split not in ("valid", "test"):
            raise ProtocolError(f"unknown split {split!r}; use 'valid' or 'test'")
        max_len = getattr(self.config, "max_len", 50)
        examples = leave_one_out(data, max_len)[split]
        if len(examples) == 0:
            raise ProtocolError(
                f"the {split} split is empty: users need at least 3 interactions for a "
                "validation example and 2 for a test example"
            )
        return evaluate_examples(self._score_batch, data, examples, self.protocol, k, 4096)

    def save(self, directory: str | Path) -> Path:
        """Write config, vocabulary, weights and the package version to ``directory``."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "model": self.name,
            "config": asdict(self.config),
            "item_tokens": list(self.item_tokens_),
            "history": getattr(self, "history_", []),
            "safer_version": __version__,
        }
        (directory / "seqrec.json").write_text(json.dumps(meta, indent=1))
        torch.save(self._state(), directory / "weights.pt")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> SequentialRecommender:
        """Load a model saved by :meth:`save`; called on the base class it picks the right model."""
        directory = Path(directory)
        meta_path = directory / "seqrec.json"
        if not meta_path.is_file() or not (directory / "weights.pt").is_file():
            raise ModelDirError(
                f"{directory} is not a seqrec model directory (needs seqrec.json and weights.pt); "
                "create one with `safer seqrec train`"
            )
        meta = json.loads(meta_path.read_text())
        from safer.seqrec import MODELS

        model_cls = MODELS.get(meta["model"])
        if model_cls is None or (cls is not SequentialRecommender and model_cls is not cls):
            raise ModelDirError(f"{directory} holds a {meta['model']!r} model, not {cls.name!r}")
        known = {f.name for f in fields(model_cls.config_class)}
        model = model_cls(
            model_cls.config_class(**{k: v for k, v in meta["config"].items() if k in known})
        )
        model.item_tokens_ = tuple(meta["item_tokens"])
        model.history_ = meta.get("history", [])
        model._load_state(torch.load(directory / "weights.pt", weights_only=True))
        return model


def evaluate_examples(
    score_batch, data: SequenceData, examples: Examples, protocol: str, k: int, batch_size: int
) -> dict[str, Any]:
    """Score ``examples`` batch by batch and average the ranking metrics."""
    totals = dict.fromkeys((f"hr@{k}", f"ndcg@{k}", f"mrr@{k}", f"recall@{k}"), 0.0)
    for i in range(0, len(examples), batch_size):
        batch = examples.take(np.arange(i, min(i + batch_size, len(examples))))
        scores = score_batch(batch)
        if protocol == "hstu":
            scores = scores.masked_fill(seen_mask(data, batch, scores.shape[1] - 1), -torch.inf)
        for name, value in rank_metrics(scores, torch.from_numpy(batch.target), k).items():
            totals[name] += value
    n = len(examples)
    return {**{m: v / n for m, v in totals.items()}, "protocol": protocol, "n_users": n}


class NeuralRecommender(SequentialRecommender):
    """Wrapper of an ``nn.Module`` encoder: training loop, scoring, weights on disk."""

    def _build(self, n_items: int) -> SequenceEncoder:
        raise NotImplementedError

    def fit(self, data: SequenceData, progress: bool = False) -> NeuralRecommender:
        """Train on the train split of ``data``; keep the epoch with the best validation MRR@10.

        One epoch is one pass over the training prefixes (``training="prefix"``) or over the
        training windows (``"sequence"``); see :class:`NeuralConfig`. Validation runs after
        every epoch (RecBole's ``eval_step: 1``); training stops after ``stopping_step`` epochs
        without improvement. ``history_`` records the loss (mean over training targets), the
        seconds of training per epoch and the validation metrics.
        """
        cfg = self.config
        check_protocol(cfg.protocol)
        training = cfg.resolved_training()
        splits = leave_one_out(data, cfg.max_len)
        if len(splits["train"]) == 0:
            raise ProtocolError("no training examples: every user needs at least 2 interactions")
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        device = torch.device(cfg.device)
        self.item_tokens_ = data.item_tokens
        self.module_ = self._build(data.n_items).to(device)
        optim = torch.optim.Adam(
            self.module_.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        if training == "prefix":
            train = _to_tensors(splits["train"], device)
            n, batch_size, n_targets = len(splits["train"]), cfg.batch_size, len(splits["train"])
        else:
            windows = training_windows(data, cfg.max_len)
            train = _window_tensors(windows, device)
            n, batch_size = len(windows), cfg.sequence_batch_size
            n_targets = int((windows.target_seq != 0).sum())
        best, best_state, bad = -np.inf, None, 0
        self.history_ = []
        bar = tqdm(range(cfg.epochs), desc=f"{self.name} epochs", disable=not progress)
        for epoch in bar:
            self.module_.train()
            start, total = time.perf_counter(), 0.0
            for index in torch.randperm(n, generator=gen).split(batch_size):
                batch = tuple(t[index.to(device)] for t in train)
                if training == "prefix":
                    loss, weight = self._prefix_loss(*batch, gen), len(index)
                else:
                    loss, weight = self._sequence_loss(*batch, gen), int((batch[2] != 0).sum())
                optim.zero_grad()
                loss.backward()
                optim.step()
                total += float(loss.detach()) * weight
            record: dict[str, Any] = {
                "epoch": epoch,
                "loss": total / n_targets,
                "train_seconds": time.perf_counter() - start,
            }
            if len(splits["valid"]):
                valid = evaluate_examples(
                    self._score_batch, data, splits["valid"], cfg.protocol, 10, cfg.eval_batch_size
                )
                record.update({f"valid_{m}": valid[m] for m in METRICS})
                if valid["mrr@10"] > best:
                    best, bad = valid["mrr@10"], 0
                    best_state = copy.deepcopy(self.module_.state_dict())
                else:
                    bad += 1
            self.history_.append(record)
            bar.set_postfix(
                loss=f"{record['loss']:.3f}", mrr=f"{record.get('valid_mrr@10', 0):.4f}"
            )
            if bad >= cfg.stopping_step:
                break
        if best_state is not None:
            self.module_.load_state_dict(best_state)
        self.module_.eval()
        return self

    def _prefix_loss(
        self,
        seq: torch.Tensor,
        ts: torch.Tensor,
        lens: torch.Tensor,
        target: torch.Tensor,
        gen: torch.Generator,
    ) -> torch.Tensor:
        """Mean next-item loss of a batch of prefixes: one user vector per row."""
        h = self.module_(seq, ts, lens)  # (B, d)
        return self._loss(h, target, gen)

    def _sequence_loss(
        self, seq: torch.Tensor, ts: torch.Tensor, target_seq: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        """Mean next-item loss over every real position of a batch of windows.

        One forward pass gives each position's state under the causal mask; the loss of
        position ``i`` is the prefix loss of input ``seq[:, : i + 1]`` with target
        ``target_seq[:, i]``; padding positions (target 0) are left out.
        """
        x = self.module_.encode(self.module_.embed_items(seq), seq != 0, ts)  # (B, T, d)
        real = target_seq != 0  # (B, T)
        return self._loss(x[real], target_seq[real], gen)  # over (n_real, d)

    def _loss(self, h: torch.Tensor, target: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        weight = self.module_.item_embedding.weight  # (n_items + 1, d)
        if self.config.protocol == "recbole":
            return nn.functional.cross_entropy(h @ weight.T, target)
        # sampled softmax: the positive against n_negatives uniform items (accidental hits masked)
        negatives = torch.randint(1, weight.shape[0], (self.config.n_negatives,), generator=gen).to(
            h.device
        )
        pos = (h * weight[target]).sum(-1, keepdim=True)  # (B, 1)
        neg = h @ weight[negatives].T  # (B, K)
        neg = neg.masked_fill(negatives[None, :] == target[:, None], -torch.inf)
        logits = torch.cat([pos, neg], dim=1)
        return nn.functional.cross_entropy(logits, torch.zeros_like(target))

    @torch.no_grad()
    def _score_batch(self, batch: Examples) -> torch.Tensor:
        self.module_.eval()
        device = next(self.module_.parameters()).device
        seq, ts, lens, _ = _to_tensors(batch, device)
        h = self.module_(seq, ts, lens)  # (B, d)
        return (h @ self.module_.item_embedding.weight.T).float().cpu()

    def _state(self) -> dict[str, Any]:
        return {k: v.cpu() for k, v in self.module_.state_dict().items()}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.module_ = self._build(len(self.item_tokens_)).to(torch.device(self.config.device))
        self.module_.load_state_dict(state)
        self.module_.eval()


def _to_tensors(ex: Examples, device: torch.device) -> tuple[torch.Tensor, ...]:
    return (
        torch.as_tensor(ex.item_seq, device=device),
        torch.as_tensor(ex.time_seq, dtype=torch.float64, device=device),
        torch.as_tensor(ex.seq_len, device=device),
        torch.as_tensor(ex.target, device=device),
    )


def _window_tensors(w: Windows, device: torch.device) -> tuple[torch.Tensor, ...]:
    return (
        torch.as_tensor(w.item_seq, device=device),
        torch.as_tensor(w.time_seq, dtype=torch.float64, device=device),
        torch.as_tensor(w.target_seq, device=device),
    )


class SequenceEncoder(nn.Module):
    """Base of the seqrec nets: ``forward`` scores from the last real position.

    A net implements ``embed_items(item_seq) -> (B, T, d)`` (item ids, 0 = padding, to tokens) and
    ``encode(x, valid, time_seq=None) -> (B, T, d)`` (every position of already-embedded tokens);
    sequence-level training and the DTR bridge (:mod:`safer.models.baselines.next_action`) call
    those two directly.
    """

    def embed_items(self, item_seq: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(
        self, x: torch.Tensor, valid: torch.Tensor, time_seq: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, item_seq: torch.Tensor, time_seq: torch.Tensor, seq_len: torch.Tensor
    ) -> torch.Tensor:
        """``(B, T)`` item ids and times, ``(B,)`` lengths -> ``(B, d)`` at each last item."""
        x = self.encode(self.embed_items(item_seq), item_seq != 0, time_seq)  # (B, T, d)
        return gather_last(x, seq_len)  # (B, d)


def gather_last(x: torch.Tensor, seq_len: torch.Tensor) -> torch.Tensor:
    """``(B, T, d)`` -> ``(B, d)``: the hidden state at the last real item of each row."""
    index = (seq_len - 1).clamp(min=0)
    return x[torch.arange(x.shape[0], device=x.device), index]


def causal_mask(item_seq: torch.Tensor) -> torch.Tensor:
    """``(B, 1, T, T)`` bool, True where query i may attend key j: j <= i and j is not padding."""
    T = item_seq.shape[1]
    lower = torch.ones(T, T, dtype=torch.bool, device=item_seq.device).tril()
    return lower[None, None] & (item_seq != 0)[:, None, None, :]
