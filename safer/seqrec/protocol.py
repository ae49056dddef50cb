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

Holdouts (which targets are held out; both protocols take either): ``"last"`` (default) is the
leave-one-out above. ``"tail"`` holds out the last ``h = max(1, round(tail_fraction * n))``
items of a user's ``n`` for test and the ``h`` before them for validation, and every step of
those tails is an example whose input is the true items before it (the evaluation of the RL
recommender papers, which score every step of held-out sessions); a sequence too short for two
tails and a training item falls back to leave-one-out. :func:`evaluate_feedback` scores such
examples as the papers do: HR and NDCG at 5, 10, 20 over every step (clicks) and over the
purchase steps (purchases) separately, beside coverage, intra-list diversity, novelty and
repetitiveness of the top-k lists (:mod:`safer.seqrec.diversity`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from safer.errors import SaferError
from safer.seqrec.data import SequenceData
from safer.seqrec.diversity import ListMetrics

__all__ = [
    "FEEDBACK_KS",
    "HOLDOUTS",
    "PROTOCOLS",
    "Examples",
    "ProtocolError",
    "Windows",
    "evaluate_examples",
    "evaluate_feedback",
    "holdout_examples",
    "leave_one_out",
    "rank_metrics",
    "seen_mask",
    "training_part",
    "training_windows",
]

PROTOCOLS = ("recbole", "hstu")
HOLDOUTS = ("last", "tail")
METRICS = ("hr@10", "ndcg@10", "mrr@10", "recall@10")
FEEDBACK_KS = (5, 10, 20)


class ProtocolError(SaferError, ValueError):
    """An unknown protocol or split name, or a split that holds no example."""


def check_protocol(name: str) -> str:
    if name not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {name!r}; use one of {', '.join(PROTOCOLS)}")
    return name


def check_holdout(name: str, tail_fraction: float = 0.1) -> str:
    if name not in HOLDOUTS:
        raise ProtocolError(f"unknown holdout {name!r}; use one of {', '.join(HOLDOUTS)}")
    if name == "tail" and not 0.0 < tail_fraction < 0.5:
        raise ProtocolError(
            f"tail_fraction must be in (0, 0.5) (one tail for validation, one for test), "
            f"got {tail_fraction}"
        )
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
    target_time
        ``(N,)`` its timestamp (a training label like the target: heads use it to build the
        state after the target; nothing that scores reads it).
    purchase
        ``(N,)`` bool, whether the target interaction is a purchase (every one is a click).

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame(
    ...     {"user": list("uuuvvv"), "item": list("abcabd"), "timestamp": [1, 2, 3] * 2}
    ... )
    >>> test = leave_one_out(SequenceData.from_interactions(log), max_len=3)["test"]
    >>> len(test), test.item_seq.tolist(), test.seq_len.tolist(), test.target.tolist()
    (2, [[1, 2, 0], [1, 2, 0]], [2, 2], [3, 4])
    >>> test.take([1]).user.tolist()
    [1]
    """

    user: np.ndarray
    position: np.ndarray
    item_seq: np.ndarray
    time_seq: np.ndarray
    seq_len: np.ndarray
    target: np.ndarray
    target_time: np.ndarray
    purchase: np.ndarray

    def __len__(self) -> int:
        return len(self.target)

    def take(self, index: np.ndarray) -> Examples:
        return Examples(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


def split_positions(
    n: int, holdout: str = "last", tail_fraction: float = 0.1
) -> tuple[range, range, range]:
    """Target positions of the train, valid and test examples of one sequence of length ``n``.

    ``holdout="last"`` mirrors RecBole's leave-one-out on the augmented examples: with
    ``k = n - 1`` examples, ``min(2, k - 1)`` of them are held out, the last one for test.
    ``"tail"``: the last ``h = max(1, round(tail_fraction * n))`` positions for test, the ``h``
    before them for validation, the rest (from position 1) for training; when that leaves no
    training position, leave-one-out.

    Examples
    --------
    >>> [list(r) for r in split_positions(5)]
    [[1, 2], [3], [4]]
    >>> [list(r) for r in split_positions(3)]
    [[1], [], [2]]
    >>> [list(r) for r in split_positions(10, "tail", 0.2)]
    [[1, 2, 3, 4, 5], [6, 7], [8, 9]]
    """
    if holdout == "tail":
        h = max(1, int(round(tail_fraction * n)))
        if n - 1 - 2 * h >= 1:
            return range(1, n - 2 * h), range(n - 2 * h, n - h), range(n - h, n)
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
    return holdout_examples(data, max_len, "last")


def holdout_examples(
    data: SequenceData, max_len: int = 50, holdout: str = "last", tail_fraction: float = 0.1
) -> dict[str, Examples]:
    """Train / valid / test examples of ``data`` under ``holdout`` (see :func:`split_positions`).

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": ["u"] * 10, "item": list("abcdefghij"), "timestamp": range(10)})
    >>> test = holdout_examples(SequenceData.from_interactions(log), 3, "tail", 0.2)["test"]
    >>> test.item_seq.tolist(), test.target.tolist()  # every step of the tail
    ([[6, 7, 8], [7, 8, 9]], [9, 10])
    """
    check_holdout(holdout, tail_fraction)
    parts: dict[str, list[tuple[int, np.ndarray]]] = {"train": [], "valid": [], "test": []}
    for u, seq in enumerate(data.sequences):
        ranges = split_positions(len(seq), holdout, tail_fraction)
        for name, positions in zip(parts, ranges, strict=False):
            if len(positions):
                parts[name].append((u, np.arange(positions.start, positions.stop)))
    return {name: _build(data, chunks, max_len) for name, chunks in parts.items()}


def training_part(
    data: SequenceData, holdout: str = "last", tail_fraction: float = 0.1
) -> SequenceData:
    """``data`` cut to what training may see: each user's items up to the last training target
    (a user with no training target keeps its first item). Statistics a model learns from the
    data (item counts, co-occurrences, returns) are taken on this, never on held-out items.

    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": ["u"] * 5, "item": list("abcde"), "timestamp": range(5)})
    >>> training_part(SequenceData.from_interactions(log)).sequences[0].tolist()
    [1, 2, 3]
    """
    ends = []
    for seq in data.sequences:
        train = split_positions(len(seq), holdout, tail_fraction)[0]
        ends.append(train.stop if len(train) else min(len(seq), 1))
    return dataclasses.replace(
        data,
        sequences=tuple(s[:e] for s, e in zip(data.sequences, ends, strict=True)),
        times=tuple(t[:e] for t, e in zip(data.times, ends, strict=True)),
        purchases=(
            None
            if data.purchases is None
            else tuple(p[:e] for p, e in zip(data.purchases, ends, strict=True))
        ),
        ratings=(
            None
            if data.ratings is None
            else tuple(r[:e] for r, e in zip(data.ratings, ends, strict=True))
        ),
    )


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
        return Examples(z, z, empty, empty.astype(float), z, z, z.astype(float), z.astype(bool))
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
    pairs = list(zip(user, position, strict=False))
    target = np.array([data.sequences[u][p] for u, p in pairs], dtype=np.int64)
    target_time = np.array([data.times[u][p] for u, p in pairs], dtype=float)
    purchase = np.array([data.purchase_flags(u)[p] for u, p in pairs], dtype=bool)
    return Examples(
        user, position, item_seq, time_seq, seq_len.astype(np.int64), target, target_time, purchase
    )


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
    target_time_seq, purchase_seq
        ``(N, max_len)`` the timestamp of each of those targets and whether it is a purchase
        (0 / False at padding); training labels, like the targets.
    """

    user: np.ndarray
    start: np.ndarray
    item_seq: np.ndarray
    time_seq: np.ndarray
    seq_len: np.ndarray
    target_seq: np.ndarray
    target_time_seq: np.ndarray
    purchase_seq: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def take(self, index: np.ndarray) -> Windows:
        return Windows(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


def training_windows(
    data: SequenceData, max_len: int = 50, holdout: str = "last", tail_fraction: float = 0.1
) -> Windows:
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
    users, starts, items, times, targets, target_times, purchases = [], [], [], [], [], [], []
    for u, seq in enumerate(data.sequences):
        train = split_positions(len(seq), holdout, tail_fraction)[0]
        bought = data.purchase_flags(u)
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
            target_times.append(np.r_[data.times[u][first + 1 : last + 1], np.zeros(pad)])
            purchases.append(np.r_[bought[first + 1 : last + 1], np.zeros(pad, bool)])
    if not users:
        empty = np.zeros((0, max_len), np.int64)
        z = np.zeros(0, np.int64)
        return Windows(
            z, z, empty, empty.astype(float), z, empty.copy(), empty.astype(float),
            empty.astype(bool),
        )  # fmt: skip
    item_seq = np.stack(items).astype(np.int64)
    return Windows(
        np.array(users, np.int64),
        np.array(starts, np.int64),
        item_seq,
        np.stack(times).astype(float),
        (item_seq != 0).sum(axis=1),
        np.stack(targets).astype(np.int64),
        np.stack(target_times).astype(float),
        np.stack(purchases).astype(bool),
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


def _scored_batches(
    score_batch: Callable[[Examples], torch.Tensor],
    data: SequenceData,
    examples: Examples,
    protocol: str,
    batch_size: int,
) -> Iterator[tuple[Examples, torch.Tensor]]:
    """Each batch of ``examples`` with its ``(B, n_items + 1)`` scores under ``protocol``
    (``"hstu"``: the items the user saw before the target removed)."""
    for i in range(0, len(examples), batch_size):
        batch = examples.take(np.arange(i, min(i + batch_size, len(examples))))
        scores = score_batch(batch)
        if protocol == "hstu":
            scores = scores.masked_fill(seen_mask(data, batch, scores.shape[1] - 1), -torch.inf)
        yield batch, scores


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
    for batch, scores in _scored_batches(score_batch, data, examples, protocol, batch_size):
        for name, value in rank_metrics(scores, torch.from_numpy(batch.target), k).items():
            totals[name] += value
    n = len(examples)
    return {**{m: v / n for m, v in totals.items()}, "protocol": protocol, "n_users": n}


def evaluate_feedback(
    score_batch: Callable[[Examples], torch.Tensor],
    data: SequenceData,
    examples: Examples,
    protocol: str,
    train: SequenceData,
    ks: tuple[int, ...] = FEEDBACK_KS,
    batch_size: int = 4096,
) -> dict[str, Any]:
    """The RL recommender papers' evaluation of ``score_batch`` over ``examples``.

    Per ``k`` of ``ks``: ``click_hr@k`` / ``click_ndcg@k`` over every example (every
    interaction is a click), ``purchase_hr@k`` / ``purchase_ndcg@k`` over the examples whose
    target is a purchase (absent when ``data`` has clicks only), and the beyond-accuracy
    metrics of the top-k lists (:class:`~safer.seqrec.diversity.ListMetrics`): ``coverage@k``,
    ``ild@k``, ``novelty@k``, ``repetitiveness@k``, with item vectors and the unpopular set
    taken from ``train`` (the training part, :func:`training_part`). Also ``n_clicks``,
    ``n_purchases`` and ``protocol``.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": list("aaabbb"), "item": list("xyzxyz"),
    ...                     "timestamp": [1, 2, 3] * 2, "rating": [5, 3, 5, 4, 5, 1]})
    >>> data = SequenceData.from_interactions(log)
    >>> test = leave_one_out(data, 5)["test"]
    >>> perfect = lambda b: torch.nn.functional.one_hot(torch.as_tensor(b.target), 4).float()
    >>> out = evaluate_feedback(perfect, data, test, "recbole", training_part(data), ks=(1,))
    >>> out["click_hr@1"], out["purchase_ndcg@1"], out["n_purchases"]
    (1.0, 1.0, 1)
    """
    ks = tuple(sorted(set(int(k) for k in ks)))
    groups = ["click"] + (["purchase"] if data.has_purchases else [])
    totals = {f"{g}_{m}@{k}": 0.0 for g in groups for k in ks for m in ("hr", "ndcg")}
    counts = dict.fromkeys(groups, 0)
    lists = ListMetrics(train, ks)
    for batch, scores in _scored_batches(score_batch, data, examples, protocol, batch_size):
        target = torch.from_numpy(batch.target)
        rows = {"click": torch.ones(len(batch), dtype=torch.bool)}
        if data.has_purchases:
            rows["purchase"] = torch.from_numpy(batch.purchase)
        for group in groups:
            chosen = rows[group]
            counts[group] += int(chosen.sum())
            if not chosen.any():
                continue
            for k in ks:
                found = rank_metrics(scores[chosen], target[chosen], k)
                totals[f"{group}_hr@{k}"] += found[f"hr@{k}"]
                totals[f"{group}_ndcg@{k}"] += found[f"ndcg@{k}"]
        lists.add(scores, torch.from_numpy(batch.item_seq))
    out: dict[str, Any] = {
        name: value / max(counts[name.split("_", 1)[0]], 1) for name, value in totals.items()
    }
    out.update(lists.result())
    out.update(n_clicks=counts["click"], n_purchases=counts.get("purchase", 0), protocol=protocol)
    return out
