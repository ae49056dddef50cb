"""Evaluation protocols: how sequences become train/valid/test examples, and how they are scored.

``"recbole"`` — RecBole's sequential protocol (``eval_args: {split: {LS: valid_and_test},
order: TO, mode: full}``): every prefix of a user's chronological sequence is an example whose
target is the next item; per user, the last example is the test example and the second-last the
validation example (a user with 2 examples gives train + test, with 1 only train); the input is
the last ``max_len`` items before the target; every item is ranked (full ranking) and items the
user has already seen are NOT removed. HR/NDCG/MRR/Recall@K follow RecBole's definitions with one
relevant item per user: the target is a hit when it is in ``torch.topk(scores, K)``; MRR = 1/rank,
NDCG = 1/log2(rank + 1) inside the top K, else 0; Recall = hit (one relevant item).

``"hstu"`` — the protocol of the HSTU and FuXi-alpha papers: the same leave-one-out examples, but
items the user has seen before the target are removed from the ranking, and training uses a
sampled softmax over uniformly drawn negatives instead of a full softmax. Its default training is
autoregressive over whole sequences (:func:`training_windows`): the training part of each user's
sequence is cut into windows of ``max_len`` inputs, and one forward pass gives the next-item loss
at every position under the causal mask, instead of one pass per prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from safer.errors import SaferError
from safer.seqrec.data import SequenceData

__all__ = [
    "PROTOCOLS",
    "Examples",
    "ProtocolError",
    "Windows",
    "evaluate_examples",
    "leave_one_out",
    "rank_metrics",
    "seen_mask",
    "training_windows",
]

PROTOCOLS = ("recbole", "hstu")
METRICS = ("hr@10", "ndcg@10", "mrr@10", "recall@10")


class ProtocolError(SaferError, ValueError):
    """An unknown protocol or split name, or a split that holds no example."""


def check_protocol(name: str) -> str:
    if name not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {name!r}; use one of {', '.join(PROTOCOLS)}")
    return name


@dataclass(frozen=True)
class Examples:
    """Next-item examples: right-padded input prefixes and their targets.

    Attributes
    ----------
    user
        ``(N,)`` index of the example's user in ``SequenceData.sequences``.
    position
        ``(N,)`` index of the target inside that user's sequence.
    item_seq, time_seq
        ``(N, max_len)`` the last ``max_len`` items (timestamps) before the target, right-padded
        with 0 (RecBole's layout: real items first, padding after).
    seq_len
        ``(N,)`` number of real items in ``item_seq``.
    target
        ``(N,)`` the item to predict.
    """

    user: np.ndarray
    position: np.ndarray
    item_seq: np.ndarray
    time_seq: np.ndarray
    seq_len: np.ndarray
    target: np.ndarray

    def __len__(self) -> int:
        return len(self.target)

    def take(self, index: np.ndarray) -> Examples:
        return Examples(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


def split_positions(n: int) -> tuple[range, range, range]:
    """Target positions of the train, valid and test examples of one sequence of length ``n``.

    Mirrors RecBole's leave-one-out on the augmented examples: with ``k = n - 1`` examples,
    ``min(2, k - 1)`` of them are held out, the last one for test.

    Examples
    --------
    >>> [list(r) for r in split_positions(5)]
    [[1, 2], [3], [4]]
    >>> [list(r) for r in split_positions(3)]
    [[1], [], [2]]
    """
    k = max(n - 1, 0)
    held = max(min(2, k - 1), 0)
    train = range(1, 1 + k - held)
    if held == 2:
        return train, range(n - 2, n - 1), range(n - 1, n)
    if held == 1:
        return train, range(0), range(n - 1, n)
    return train, range(0), range(0)


def leave_one_out(data: SequenceData, max_len: int = 50) -> dict[str, Examples]:
    """Build RecBole's leave-one-out train / valid / test examples from ``data``.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": ["u"] * 4, "item": list("abcd"), "timestamp": range(4)})
    >>> splits = leave_one_out(SequenceData.from_interactions(log), max_len=2)
    >>> splits["test"].item_seq.tolist(), splits["test"].target.tolist()
    ([[2, 3]], [4])
    """
    parts: dict[str, list[tuple[int, np.ndarray]]] = {"train": [], "valid": [], "test": []}
    for u, seq in enumerate(data.sequences):
        for name, positions in zip(parts, split_positions(len(seq)), strict=False):
            if len(positions):
                parts[name].append((u, np.arange(positions.start, positions.stop)))
    return {name: _build(data, chunks, max_len) for name, chunks in parts.items()}


def _build(data: SequenceData, chunks: list[tuple[int, np.ndarray]], L: int) -> Examples:
    users, positions, items, times = [], [], [], []
    for u, pos in chunks:
        seq = np.concatenate([np.zeros(L, np.int64), data.sequences[u]])
        ts = np.concatenate([np.zeros(L), data.times[u]])
        # window p of the left-padded sequence = the L items before position p
        items.append(sliding_window_view(seq, L)[pos])
        times.append(sliding_window_view(ts, L)[pos])
        users.append(np.full(len(pos), u, np.int64))
        positions.append(pos)
    if not chunks:
        empty = np.zeros((0, L), np.int64)
        z = np.zeros(0, np.int64)
        return Examples(z, z, empty, empty.astype(float), z, z)
    position = np.concatenate(positions)
    left_items = np.concatenate(items)
    left_times = np.concatenate(times)
    seq_len = np.minimum(position, L)
    # left-padded -> right-padded (RecBole's layout): rotate each row by its padding
    index = (np.arange(L)[None, :] + (L - seq_len)[:, None]) % L
    item_seq = np.take_along_axis(left_items, index, axis=1)
    time_seq = np.take_along_axis(left_times, index, axis=1)
    time_seq[item_seq == 0] = 0.0
    user = np.concatenate(users)
    target = np.array(
        [data.sequences[u][p] for u, p in zip(user, position, strict=False)], dtype=np.int64
    )
    return Examples(user, position, item_seq, time_seq, seq_len.astype(np.int64), target)


@dataclass(frozen=True)
class Windows:
    """Training windows for sequence-level (autoregressive) training.

    Attributes
    ----------
    user
        ``(N,)`` index of the window's user in ``SequenceData.sequences``.
    start
        ``(N,)`` index in that user's sequence of the window's first input item.
    item_seq, time_seq
        ``(N, max_len)`` input items (timestamps), right-padded with 0 like
        :class:`Examples` (real items first), so position ``i`` of a window sits where it sits
        in an evaluation input.
    seq_len
        ``(N,)`` number of real input items.
    target_seq
        ``(N, max_len)`` the next item of each input position (``item_seq`` shifted by one);
        0 at padding, where no loss is taken.
    """

    user: np.ndarray
    start: np.ndarray
    item_seq: np.ndarray
    time_seq: np.ndarray
    seq_len: np.ndarray
    target_seq: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def take(self, index: np.ndarray) -> Windows:
        return Windows(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


def training_windows(data: SequenceData, max_len: int = 50) -> Windows:
    """Cut each user's training items into windows of ``max_len`` inputs and their next items.

    The training part of a sequence is everything before the validation and test targets:
    exactly the items whose prefixes are the ``train`` examples of :func:`leave_one_out`, so
    every one of those targets is the target of exactly one window position. Windows do not
    overlap and are aligned on the most recent training item (the last window is full when the
    user has ``max_len + 1`` training items or more; an older remainder forms a shorter first
    window). Inside a window, position ``i`` sees items ``start..start+i`` only through the
    model's causal mask, so a position's context is the window, not the whole history.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": ["u"] * 6, "item": list("abcdef"), "timestamp": range(6)})
    >>> w = training_windows(SequenceData.from_interactions(log), max_len=2)
    >>> w.item_seq.tolist(), w.target_seq.tolist()
    ([[1, 0], [2, 3]], [[2, 0], [3, 4]])
    """
    users, starts, items, times, targets = [], [], [], [], []
    for u, seq in enumerate(data.sequences):
        train = split_positions(len(seq))[0]
        bounds = []  # (first input position, last target position), newest window first
        last = train.stop - 1 if len(train) else 0
        while last >= 1:
            first = max(0, last - max_len)
            bounds.append((first, last))
            last = first
        for first, last in reversed(bounds):
            pad = max_len - (last - first)
            users.append(u)
            starts.append(first)
            items.append(np.r_[seq[first:last], np.zeros(pad, np.int64)])
            times.append(np.r_[data.times[u][first:last], np.zeros(pad)])
            targets.append(np.r_[seq[first + 1 : last + 1], np.zeros(pad, np.int64)])
    if not users:
        empty = np.zeros((0, max_len), np.int64)
        z = np.zeros(0, np.int64)
        return Windows(z, z, empty, empty.astype(float), z, empty.copy())
    item_seq = np.stack(items).astype(np.int64)
    return Windows(
        np.array(users, np.int64),
        np.array(starts, np.int64),
        item_seq,
        np.stack(times).astype(float),
        (item_seq != 0).sum(axis=1),
        np.stack(targets).astype(np.int64),
    )


def seen_mask(data: SequenceData, examples: Examples, n_items: int) -> torch.Tensor:
    """``(N, n_items + 1)`` bool: items the user interacted with before each example's target."""
    mask = torch.zeros(len(examples), n_items + 1, dtype=torch.bool)
    for row, (u, p) in enumerate(zip(examples.user, examples.position, strict=False)):
        mask[row, torch.as_tensor(np.array(data.sequences[u][:p]))] = True
    return mask


def rank_metrics(scores: torch.Tensor, target: torch.Tensor, k: int = 10) -> dict[str, float]:
    """Summed HR/NDCG/MRR/Recall@k of one batch (divide by the number of examples).

    ``scores`` is ``(B, n_items + 1)`` with column 0 the padding item; it is excluded from the
    ranking here. A target counts as a hit when it is among ``torch.topk(scores, k)``, as in
    RecBole; ties are broken by ``topk`` in the same way.

    Examples
    --------
    >>> s = torch.tensor([[0.0, 0.9, 0.5, 0.1]])
    >>> rank_metrics(s, torch.tensor([2]), k=2)["mrr@2"]
    0.5
    """
    scores = scores.clone()
    scores[:, 0] = -torch.inf
    depth = min(k, scores.shape[1] - 1)  # fewer items than k: every item is in the top k
    top = torch.topk(scores, depth, dim=1).indices  # (B, depth)
    hit = top == target[:, None]  # (B, depth)
    ranks = torch.arange(1, depth + 1, dtype=torch.float64)
    found = hit.any(dim=1)
    rank = torch.where(found, (hit.double() * ranks).sum(dim=1), torch.inf)
    return {
        f"hr@{k}": float(found.double().sum()),
        f"ndcg@{k}": float(torch.where(found, 1.0 / torch.log2(rank + 1), 0.0).sum()),
        f"mrr@{k}": float(torch.where(found, 1.0 / rank, 0.0).sum()),
        f"recall@{k}": float(found.double().sum()),
    }


def evaluate_examples(
    score_batch: Callable[[Examples], torch.Tensor],
    data: SequenceData,
    examples: Examples,
    protocol: str,
    k: int = 10,
    batch_size: int = 4096,
) -> dict[str, Any]:
    """HR/NDCG/MRR/Recall@k of ``score_batch`` over ``examples``, under ``protocol``.

    ``score_batch(batch) -> (B, n_items + 1)`` scores one batch of examples; under ``"hstu"``
    the items each user saw before the target are removed from the ranking first. Returns the
    four means, ``protocol`` and ``n_users`` (the number of examples).
    """
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
