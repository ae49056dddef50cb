"""The recommender contract, and the one neural recommender: an encoder plus a head.

:class:`SequentialRecommender` is what every model of :data:`safer.seqrec.MODELS` is, on the
learnable base (:class:`~safer._learnable.Learnable`): ``fit`` on the train part of a
:class:`~safer.seqrec.data.SequenceData`, ``score`` / ``evaluate`` under the model's protocol,
``save`` / ``load`` in the artifact format (``model.json``: ``model`` = the registry name,
``config``, the item vocabulary ``item_tokens``, ``history``, ``content_hash``; ``weights.pt``).
``SequentialRecommender.load(dir)`` picks the model from the folder; it also reads the folders of
the previous version (``seqrec.json``, no content hash, the encoder's weights alone).

:class:`NeuralRecommender` is an encoder of :data:`~safer.seqrec.encoders.ENCODERS` and a head
of :data:`~safer.seqrec.heads.HEADS` (``config.head``) in one :class:`SequenceModel`, trained on
the shared :class:`~safer._learnable.Trainer` with Adam: one epoch is one pass over the training
prefixes or windows (``config.training``), validation MRR@10 after every epoch picks the best
epoch and stops training after ``stopping_step`` epochs without improvement. The training scheme
(``config.scheme``, :data:`~safer.seqrec.schemes.SCHEMES`) says how many such networks train
together (PCRec's two peers) and what happens between epochs; one network is kept.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import fields
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from safer._learnable import Learnable, Trainer, fitting
from safer.errors import SaferError
from safer.seqrec.config import NeuralConfig
from safer.seqrec.data import SequenceData
from safer.seqrec.encoders import ENCODERS
from safer.seqrec.encoders._layers import SequenceEncoder, gather_last
from safer.seqrec.heads import HEADS, Encoded, Head
from safer.seqrec.protocol import (
    FEEDBACK_KS,
    METRICS,
    Examples,
    ProtocolError,
    Windows,
    check_protocol,
    evaluate_examples,
    evaluate_feedback,
    holdout_examples,
    training_part,
    training_windows,
)
from safer.seqrec.schemes import SCHEMES

__all__ = ["NeuralRecommender", "SequenceModel", "SequentialRecommender"]

_MONITOR = "valid_mrr@10"  # the validation metric that picks the best epoch
#: The example fields a head may read when scoring (known before the target; never the target,
#: its time or its purchase flag).
SCORING_FIELDS = ("user", "position", "item_seq", "time_seq", "seq_len")


class SequentialRecommender(Learnable):
    """Interface of every recommender: ``fit``, ``score``, ``evaluate``, ``save``, ``load``.

    A subclass sets ``Config`` (with ``protocol`` and ``max_len`` fields) and implements
    ``fit(data, progress)`` (setting ``item_tokens_`` and ``net_``, calling ``_finish_fit``
    last), ``_score_batch`` and ``_restore`` (rebuilding ``net_`` from the saved metadata).

    Attributes
    ----------
    net_ : torch.nn.Module
        What the model learned, as a module: its weights are saved and hashed.
    item_tokens_ : tuple of str
        The training vocabulary: ``item_tokens_[i - 1]`` is the token of item id ``i``.
    content_hash_ : str
        sha256 over the weights and the saved metadata; set by ``fit`` and ``load``.
    history_ : dict
        The :class:`~safer._learnable.Trainer` record (``epochs``, ``best_epoch``,
        ``best_val``); empty for models that do not train by epochs.

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> from safer.seqrec import make_model
    >>> log = pd.DataFrame({"user": list("aaabb"), "item": list("xyzxy"), "timestamp": range(5)})
    >>> folder = make_model("pop").fit(SequenceData.from_interactions(log)).save(tempfile.mkdtemp())
    >>> type(SequentialRecommender.load(folder)).__name__  # the class is read from the folder
    'Pop'
    """

    legacy_files = ("seqrec.json",)  # the metadata file of the previous version
    how_to_train = "safer seqrec train --out DIR"

    def fit(self, data: SequenceData, progress: bool = False) -> SequentialRecommender:
        raise NotImplementedError

    def _score_batch(self, batch: Examples) -> torch.Tensor:
        """``(B, n_items + 1)`` float32 scores of one batch of examples, on the CPU."""
        raise NotImplementedError

    def _network(self) -> nn.Module:
        return self.net_

    @property
    def protocol(self) -> str:
        return self.config.protocol

    def splits(self, data: SequenceData) -> dict[str, Examples]:
        """The train / valid / test examples of ``data`` under the config's ``holdout``."""
        cfg = self.config
        holdout = getattr(cfg, "holdout", "last")
        fraction = getattr(cfg, "tail_fraction", 0.1)
        return holdout_examples(data, cfg.max_len, holdout, fraction)

    def training_part(self, data: SequenceData) -> SequenceData:
        """What of ``data`` the model trains on (:func:`~safer.seqrec.protocol.training_part`)."""
        cfg = self.config
        return training_part(
            data, getattr(cfg, "holdout", "last"), getattr(cfg, "tail_fraction", 0.1)
        )

    def score(self, examples: Examples) -> np.ndarray:
        """``(N, n_items + 1)`` scores of every item for each example (column 0: padding).

        Raises :class:`~safer.errors.NotFittedError` before ``fit``.
        """
        self.check_fitted()
        size = getattr(self.config, "eval_batch_size", 4096)
        out = [
            self._score_batch(examples.take(np.arange(i, min(i + size, len(examples)))))
            for i in range(0, len(examples), size)
        ]
        if not out:
            return np.zeros((0, len(self.item_tokens_) + 1), np.float32)
        return torch.cat(out).numpy()

    def evaluate(self, data: SequenceData, split: str = "test", k: int = 10) -> dict[str, Any]:
        """HR/NDCG/MRR/Recall@k on the ``split`` examples of ``data`` under the model's protocol
        and holdout.

        Returns a dict with the four metrics, ``protocol`` and ``n_users`` (examples scored).
        """
        examples = self._held_out(data, split)
        return evaluate_examples(self._score_batch, data, examples, self.protocol, k, 4096)

    def evaluate_feedback(
        self, data: SequenceData, split: str = "test", ks: tuple[int, ...] = FEEDBACK_KS
    ) -> dict[str, Any]:
        """The RL recommender papers' evaluation of the ``split`` examples of ``data``: HR and
        NDCG at each k for clicks (every step) and purchases separately, and coverage,
        intra-list diversity, novelty and repetitiveness of the top-k lists
        (:func:`~safer.seqrec.protocol.evaluate_feedback`). With ``holdout="tail"`` every step
        of each user's held-out tail is scored. Adds ``holdout`` to the result."""
        examples = self._held_out(data, split)
        result = evaluate_feedback(
            self._score_batch, data, examples, self.protocol, self.training_part(data), ks, 4096
        )
        return {**result, "holdout": getattr(self.config, "holdout", "last")}

    def _held_out(self, data: SequenceData, split: str) -> Examples:
        self.check_fitted()
        if split not in ("valid", "test"):
            raise ProtocolError(f"unknown split {split!r}; use 'valid' or 'test'")
        examples = self.splits(data)[split]
        if len(examples) == 0:
            raise ProtocolError(
                f"the {split} split is empty: users need at least 3 interactions for a "
                "validation example and 2 for a test example"
            )
        return examples

    # -- artifact ---------------------------------------------------------------------------
    def _learned_meta(self) -> dict[str, Any]:
        return {"item_tokens": list(self.item_tokens_)}

    def _restore(self, meta: dict[str, Any]) -> None:
        self.item_tokens_ = tuple(meta["item_tokens"])

    @classmethod
    def load(cls, directory: str | Path) -> SequentialRecommender:
        """Load a saved model; called on ``SequentialRecommender`` it picks the model class
        from the folder (:func:`safer.seqrec.load_model`). Checks kind, version and hash."""
        if cls is SequentialRecommender:
            from safer.seqrec import load_model  # the name map lives in the package

            return load_model(directory)
        model = super().load(directory)
        if isinstance(model.history_, list):  # seqrec.json of the previous version
            model.history_ = _legacy_history(model.history_)
        return model


def _legacy_history(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The per-epoch list of the previous version in the :class:`Trainer`'s layout."""
    if not records:
        return {}
    epochs = [
        {
            "epoch": r.get("epoch", i),
            "train": r.get("loss"),
            "seconds": r.get("train_seconds"),
            **{k: v for k, v in r.items() if k.startswith("valid_")},
            **({"val": r[_MONITOR]} if _MONITOR in r else {}),
        }
        for i, r in enumerate(records)
    ]
    scored = [r for r in epochs if "val" in r]
    best = max(scored, key=lambda r: r["val"]) if scored else None
    return {
        "epochs": epochs,
        "best_epoch": None if best is None else best["epoch"],
        "best_val": None if best is None else best["val"],
    }


# ------------------------------------------------------------------------------ network
class SequenceModel(nn.Module):
    """An encoder and a head on tensors: the network a :class:`NeuralRecommender` trains.

    Examples
    --------
    >>> from safer.seqrec.encoders import GRU4RecConfig, GRU4RecNet
    >>> from safer.seqrec.heads import SoftmaxHead
    >>> cfg = GRU4RecConfig(embedding_size=8, hidden_size=8)
    >>> net = SequenceModel(GRU4RecNet(9, cfg), SoftmaxHead(9, 8, cfg))
    >>> items = torch.tensor([[3, 5, 0]])
    >>> net(items, torch.zeros(1, 3), torch.tensor([2])).shape
    torch.Size([1, 10])
    >>> windows = {"target_seq": torch.tensor([[5, 7, 0]])}  # a target after each real item
    >>> batch = {"item_seq": items, "time_seq": torch.zeros(1, 3), **windows}
    >>> loss, n_targets = net.loss(batch, torch.Generator().manual_seed(0))
    >>> n_targets
    2
    """

    def __init__(self, encoder: SequenceEncoder, head: Head):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(
        self,
        item_seq: torch.Tensor,
        time_seq: torch.Tensor,
        seq_len: torch.Tensor,
        batch: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Item ids and times (B, T), lengths (B,) -> item scores (B, n_items + 1); ``batch``:
        the examples' other known fields (:data:`SCORING_FIELDS`) for heads that read them."""
        states = self.encoder(item_seq, time_seq, seq_len)
        return self.head.score(self.encoder, states, batch)

    def begin_epoch(self, epoch: int) -> None:
        """Tell the head a training epoch starts (warm-ups count epochs)."""
        self.head.begin_epoch(epoch)

    def loss(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator
    ) -> tuple[torch.Tensor, int]:
        """The head's loss of one batch and its number of targets.

        ``batch`` holds ``item_seq`` and ``time_seq`` (B, T) and either ``seq_len`` and
        ``target`` (B,) (prefixes: one target after each row's last item) or ``target_seq``
        (B, T) (windows: a target at every real position, 0 at padding).
        """
        enc, seq = self.encoder, batch["item_seq"]
        hidden = enc.encode(enc.embed_items(seq), seq != 0, batch["time_seq"])  # (B, T, d)
        if "target_seq" in batch:
            where = batch["target_seq"] != 0  # (B, T)
            states, targets = hidden[where], batch["target_seq"][where]  # (N, d), (N,)
        else:
            last = (batch["seq_len"] - 1).clamp(min=0)  # (B,)
            states, targets = gather_last(hidden, batch["seq_len"]), batch["target"]  # (B, d)
            where = torch.zeros(seq.shape, dtype=torch.bool, device=seq.device)  # (B, T)
            where[torch.arange(len(seq), device=seq.device), last] = True
        encoded = Encoded(states, targets, hidden, where, batch)
        return self.head.loss(enc, encoded, generator), len(targets)


# -------------------------------------------------------------------------- recommender
class NeuralRecommender(SequentialRecommender):
    """An encoder and a head (estimator contract: config in, ``fit`` returns self).

    Each neural model of :data:`safer.seqrec.MODELS` is this class bound to one encoder by
    :meth:`for_encoder` (``SASRec``, ``GRU4Rec``, ``HSTU``, ``FuXiAlpha``); its ``Config`` is
    the encoder's config, whose ``head`` field names the head (default ``"softmax"``).

    Parameters
    ----------
    config : NeuralConfig subclass, optional
        The encoder's config (default: its defaults).

    Attributes
    ----------
    net_ : SequenceModel
        The trained encoder (``net_.encoder``) and head (``net_.head``).
    item_tokens_, content_hash_, history_
        See :class:`SequentialRecommender`; ``history_["epochs"]`` holds per epoch ``train``
        (mean loss over the training targets), ``seconds`` (training only) and the
        validation ``valid_hr@10`` ... ``valid_recall@10`` (``val`` = ``valid_mrr@10``).

    Examples
    --------
    >>> import pandas as pd
    >>> from safer.seqrec import make_model
    >>> log = pd.DataFrame(
    ...     {"user": list("aaabbb"), "item": list("xyzxyz"), "timestamp": [1, 2, 3] * 2}
    ... )
    >>> data = SequenceData.from_interactions(log)
    >>> model = make_model("sasrec", epochs=1, n_layers=1).fit(data)
    >>> type(model).__name__, model.net_.head
    ('SASRec', SoftmaxHead())
    >>> sorted(model.evaluate(data))[:2]
    ['hr@10', 'mrr@10']
    """

    Config = NeuralConfig  # each bound class: its encoder's config
    encoder_name: ClassVar[str] = ""

    @classmethod
    def for_encoder(cls, name: str) -> type[NeuralRecommender]:
        """The recommender class of encoder ``name`` (a key of ``ENCODERS``), saved as model
        ``name``; encoder ``XNet`` gives class ``X`` of module ``safer.seqrec``, whose docstring
        carries a runnable example (run with the package's doctests)."""
        encoder = ENCODERS[name]
        title = encoder.__name__.removesuffix("Net")
        doc = (
            f"The ``{name}`` model: :class:`~{encoder.__module__}.{encoder.__name__}` and the "
            "head of ``config.head`` (see :class:`~safer.seqrec.recommender.NeuralRecommender`)."
            "\n\nExamples\n--------\n"
            ">>> import pandas as pd\n"
            f">>> from safer.seqrec import SequenceData, {title}\n"
            '>>> log = pd.DataFrame({"user": list("aaaabbbb"), "item": list("wxyzxyzw"),\n'
            '...                     "timestamp": [1, 2, 3, 4] * 2})\n'
            ">>> data = SequenceData.from_interactions(log)\n"
            f">>> model = {title}({title}.Config(epochs=1)).fit(data)\n"
            '>>> model.score(model.splits(data)["test"]).shape  # 2 users, 4 items + padding\n'
            "(2, 5)\n"
        )
        attrs = {"Config": encoder.Config, "artifact_kind": name, "encoder_name": name}
        return type(title, (cls,), {"__module__": "safer.seqrec", "__doc__": doc, **attrs})

    def fit(self, data: SequenceData, progress: bool = False) -> NeuralRecommender:
        """Train on the train split of ``data``; keep the epoch with the best validation MRR@10.

        One epoch is one pass over the training prefixes (``training="prefix"``) or over the
        training windows (``"sequence"``); see :class:`~safer.seqrec.config.NeuralConfig`. The
        scheme (``config.scheme``) may train several members (PCRec's peers), each with its own
        batch order and learning rate; the best member on validation is kept (the epoch's
        ``train`` loss is then the sum over members).
        Runs in :func:`~safer._learnable.fitting` (the config's seed; the caller's random
        stream is left as it was).
        """
        cfg = self.config
        self._check_encoder()
        check_protocol(cfg.protocol)
        cfg.check_holdout()
        training = cfg.resolved_training()
        scheme = SCHEMES[cfg.scheme](cfg)
        splits = self.splits(data)
        if len(splits["train"]) == 0:
            raise ProtocolError("no training examples: every user needs at least 2 interactions")
        device = torch.device(cfg.device)
        train_part = self.training_part(data)
        with fitting(cfg.seed):
            gen = torch.Generator().manual_seed(cfg.seed)  # batch order and negatives
            self.item_tokens_ = data.item_tokens
            members = nn.ModuleList(
                [self._build(data.n_items, train_part) for _ in range(scheme.n_members)]
            ).to(device)
            rows = (
                splits["train"]
                if training == "prefix"
                else training_windows(data, cfg.max_len, cfg.holdout, cfg.tail_fraction)
            )
            train = _tensors(rows, device)
            size = cfg.batch_size if training == "prefix" else cfg.sequence_batch_size
            valid = splits["valid"]

            def validate() -> dict[str, float]:
                results = [
                    evaluate_examples(
                        partial(self._score_with, net),
                        data,
                        valid,
                        cfg.protocol,
                        10,
                        cfg.eval_batch_size,
                    )  # fmt: skip
                    for net in members
                ]
                best = max(range(len(results)), key=lambda i: results[i]["mrr@10"])
                record = {f"valid_{m}": results[best][m] for m in METRICS}
                if len(results) > 1:
                    record["best_member"] = best
                    for i, result in enumerate(results):
                        record[f"valid_mrr@10_member{i}"] = result["mrr@10"]
                return record

            optimizer = torch.optim.Adam(
                [
                    {"params": list(net.parameters()), "lr": lr}
                    for net, lr in zip(members, scheme.learning_rates(), strict=True)
                ],
                lr=cfg.learning_rate,
                weight_decay=cfg.weight_decay,
            )
            epochs = itertools.count()

            def batches():
                epoch = next(epochs)
                for net in members:
                    net.begin_epoch(epoch)
                orders = [torch.randperm(len(rows), generator=gen).split(size) for _ in members]
                yield from zip(*orders, strict=True)
                scheme.after_epoch(members, epoch)  # after the last step, before validation

            def step(indices: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, int]:
                """Each member's loss on its own batch; their sum, weighted by the first
                member's number of targets (a member's gradients come from its own loss)."""
                losses = [
                    net.loss({k: t[index.to(device)] for k, t in train.items()}, gen)
                    for net, index in zip(members, indices, strict=True)
                ]
                total = losses[0][0]
                for loss, _ in losses[1:]:
                    total = total + loss
                return total, losses[0][1]

            trainer = Trainer(
                epochs=cfg.epochs, patience=cfg.stopping_step, min_delta=0.0, mode="max",
                desc=f"{self.kind()} epochs", progress=progress,
            )  # fmt: skip
            self.history_ = trainer.run(
                members,
                optimizer,
                batches,
                step,
                validate=validate if len(valid) else None,
                monitor=_MONITOR,
            )
            self.net_ = members[self._kept_member()]
        return self._finish_fit()

    def fit_network(
        self,
        data: SequenceData,
        train: Callable[[SequenceModel, Callable[[Examples], torch.Tensor]], dict[str, Any]],
    ) -> NeuralRecommender:
        """Fit with a training loop other than :meth:`fit`'s, e.g. on a distilled summary
        (:func:`safer.seqrec.distill.fit_on_summary`).

        In :func:`~safer._learnable.fitting` (the config's seed), builds the untrained network
        for ``data``'s item vocabulary (on ``config.device``) and calls ``train(net, score)``:
        ``score(batch)`` gives the ``(B, n_items + 1)`` scores of a batch of examples by ``net``
        as it stands (for validation, e.g. with
        :func:`~safer.seqrec.protocol.evaluate_examples`). ``train`` trains ``net`` in place and
        returns its :class:`~safer._learnable.Trainer` record, which becomes ``history_``;
        ``net`` becomes ``net_`` and the model is fitted (content hash), as after :meth:`fit`.

        Examples
        --------
        >>> import pandas as pd
        >>> from safer.seqrec import make_model
        >>> log = pd.DataFrame({"user": list("aabb"), "item": list("xyxy"), "timestamp": range(4)})
        >>> data = SequenceData.from_interactions(log)
        >>> untrained = make_model("gru4rec", embedding_size=4, hidden_size=4)
        >>> untrained.fit_network(data, lambda net, score: {}).is_fitted  # no training: as built
        True
        """
        self._check_encoder()
        with fitting(self.config.seed):
            self.item_tokens_ = data.item_tokens
            net = self._build(data.n_items).to(torch.device(self.config.device))
            self.history_ = train(net, partial(self._score_with, net))
            self.net_ = net
        return self._finish_fit()

    def _check_encoder(self) -> None:
        if not self.encoder_name:
            raise SaferError(
                "NeuralRecommender needs an encoder: build models with "
                "safer.seqrec.make_model(name) or NeuralRecommender.for_encoder(name)"
            )

    def _kept_member(self) -> int:
        """The member whose weights are kept: the best on validation at the best epoch."""
        best = self.history_.get("best_epoch")
        if best is None:
            return 0
        return int(self.history_["epochs"][best].get("best_member", 0))

    @torch.no_grad()
    def _score_with(self, net: SequenceModel, batch: Examples) -> torch.Tensor:
        net.eval()
        t = _tensors(batch, torch.device(self.config.device), SCORING_FIELDS)
        return net(t["item_seq"], t["time_seq"], t["seq_len"], t).float().cpu()

    def _score_batch(self, batch: Examples) -> torch.Tensor:
        return self._score_with(self.net_, batch)

    def _build(self, n_items: int, train: SequenceData | None = None) -> SequenceModel:
        """The untrained network; ``train`` (the training part) when fitting, for the head's
        data statistics."""
        encoder = ENCODERS[self.encoder_name](n_items, self.config)
        head = HEADS[self.config.head](n_items, encoder.item_embedding.embedding_dim, self.config)
        head.attach(encoder)
        if train is not None:
            head.prepare(train)
        return SequenceModel(encoder, head)

    # -- artifact ---------------------------------------------------------------------------
    def _restore(self, meta: dict[str, Any]) -> None:
        super()._restore(meta)
        with torch.random.fork_rng(devices=[]):  # the saved weights replace the initial ones
            self.net_ = self._build(len(self.item_tokens_)).to(torch.device(self.config.device))

    def _save_weights(self, path: Path) -> None:
        torch.save({k: v.cpu() for k, v in self.net_.state_dict().items()}, path)

    def _load_weights(self, path: Path) -> None:
        state = torch.load(path, weights_only=True)
        if not any(k.startswith(("encoder.", "head.")) for k in state):
            state = {f"encoder.{k}": v for k, v in state.items()}  # previous version: encoder only
        self.net_.load_state_dict(state)
        self.net_.eval()


def _tensors(
    rows: Examples | Windows, device: torch.device, names: tuple[str, ...] | None = None
) -> dict[str, torch.Tensor]:
    """Every field of ``rows`` (or those in ``names``) as a tensor on ``device`` (times as
    float64)."""
    out = {}
    for f in fields(rows):
        if names is not None and f.name not in names:
            continue
        value = getattr(rows, f.name)
        dtype = torch.float64 if value.dtype.kind == "f" else None
        out[f.name] = torch.as_tensor(value, dtype=dtype, device=device)
    return out
