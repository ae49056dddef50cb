"""Rerank a fitted recommender's top-k lists and compare them with the backbone's.

For each held-out example (the ``split`` examples of the model's protocol and holdout; a random
subsample of ``users`` of them when given), the backbone's top ``k`` (default 20) candidates are
taken from its scores under its protocol (``"hstu"``: items seen before the target removed) and
each reranker reorders them. Every list -- the backbone's own order and each reranker's -- is
measured at ``at`` (default 10):

- ``hr@at``, ``ndcg@at``: :func:`~safer.seqrec.protocol.rank_metrics` of the list (a reranker
  moves the target inside the top ``k`` only, so HR@``at`` can change but not HR@``k``);
- ``genre_coverage@at``: the share of all genres the top ``at`` carry
  (:func:`~safer.seqrec.diversity.genre_coverage`), averaged over users;
- ``year_gap@at``: the year-exposure gap ``|E_older - E_newer| / (E_older + E_newer)`` of the
  top ``at`` (:func:`~safer.seqrec.diversity.exposure_gap`; exposure ``1 / log2(rank + 1)``,
  older = released before the catalogue's median year, :attr:`ItemSide.split_year`), averaged
  over users: 0 is equal exposure of the two halves of the catalogue, 1 is one half only;
- ``seconds_per_user``: the reranker's wall time per list; for multi-step rerankers, ``steps``
  (mean node visits per user) and ``nodes`` (how often each node was visited, stop included).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from safer.errors import SaferError
from safer.seqrec.data import SequenceData
from safer.seqrec.diversity import exposure_gap, genre_coverage
from safer.seqrec.protocol import ProtocolError, rank_metrics, seen_mask
from safer.seqrec.recommender import SequentialRecommender
from safer.seqrec.rerank._base import ItemSide, Reranker

__all__ = ["evaluate_rerank", "list_metrics", "top_candidates"]


def top_candidates(
    model: SequentialRecommender, data: SequenceData, examples, k: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """``(N, k)`` item ids (best first) and their ``(N, k)`` scores: the fitted ``model``'s top
    ``k`` for each of ``examples`` under its protocol (the padding id never)."""
    scores = torch.from_numpy(model.score(examples))
    if model.protocol == "hstu":
        scores = scores.masked_fill(seen_mask(data, examples, scores.shape[1] - 1), -torch.inf)
    scores[:, 0] = -torch.inf
    top = torch.topk(scores, min(k, scores.shape[1] - 1), dim=1)  # the order rank_metrics uses
    return top.indices.numpy(), top.values.numpy()


def list_metrics(
    lists: np.ndarray, target: np.ndarray, items: ItemSide, at: int = 10
) -> dict[str, float]:
    """HR / NDCG / genre coverage / year-exposure gap at ``at`` of ``(N, k)`` ranked lists
    (see the module docstring), each the mean over the ``N`` lists.

    >>> side = ItemSide.build(["a", "b", "c"], np.eye(4, 2, -1, bool), ("x", "y"),
    ...                       [1950, 1990, 1990])
    >>> out = list_metrics(np.array([[2, 1, 3]]), np.array([1]), side, at=2)
    >>> out["hr@2"], round(out["ndcg@2"], 3), out["genre_coverage@2"]
    (1.0, 0.631, 1.0)
    """
    lists = np.asarray(lists)
    n, k = lists.shape
    scores = torch.full((n, items.n_items + 1), -torch.inf)
    scores.scatter_(
        1, torch.from_numpy(lists), torch.arange(k, 0, -1, dtype=torch.float32)[None].expand(n, k)
    )
    found = rank_metrics(scores, torch.from_numpy(np.asarray(target)), at)
    top = lists[:, :at]
    return {
        f"hr@{at}": found[f"hr@{at}"] / n,
        f"ndcg@{at}": found[f"ndcg@{at}"] / n,
        f"genre_coverage@{at}": float(genre_coverage(top, items.genres).mean()),
        f"year_gap@{at}": float(exposure_gap(top, items.year_group).mean()),
    }


def evaluate_rerank(
    model: SequentialRecommender,
    data: SequenceData,
    items: ItemSide,
    rerankers: Mapping[str, Reranker],
    split: str = "test",
    k: int = 20,
    at: int = 10,
    users: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """The backbone's top-``k`` lists and each reranker's reordering of them, measured at
    ``at`` (see the module docstring).

    Returns ``{"backbone": metrics, name: metrics for each reranker, "n_users", "k", "at",
    "split", "protocol"}``; ``users`` draws that many held-out examples at random (``seed``).
    """
    model.check_fitted()
    if items.n_items != len(model.item_tokens_):
        raise ProtocolError(
            f"the item side information holds {items.n_items} items but the model knows "
            f"{len(model.item_tokens_)}; read it for the data the model was trained on"
        )
    if split not in ("valid", "test"):
        raise ProtocolError(f"unknown split {split!r}; use 'valid' or 'test'")
    examples = model.splits(data)[split]
    if users is not None and users < len(examples):
        rng = np.random.default_rng(seed)
        examples = examples.take(np.sort(rng.choice(len(examples), users, replace=False)))
    if len(examples) == 0:
        raise ProtocolError(f"the {split} split holds no example to rerank")
    candidates, scores = top_candidates(model, data, examples, k)
    out: dict[str, Any] = {"backbone": list_metrics(candidates, examples.target, items, at)}
    for name, reranker in rerankers.items():
        lists = np.zeros_like(candidates)
        visits: Counter[str] = Counter()
        n_steps = 0
        start = time.perf_counter()
        rows = tqdm(range(len(candidates)), desc=name, unit="user", disable=not progress)
        for row in rows:
            history = examples.item_seq[row, : examples.seq_len[row]]
            result = reranker.rerank(candidates[row], scores[row], history)
            if sorted(result.items.tolist()) != sorted(candidates[row].tolist()):
                raise SaferError(
                    f"reranker {name!r} returned a list that is not a permutation of its "
                    "candidates; a reranker may only reorder them"
                )
            lists[row] = result.items
            visits.update(step.node for step in result.steps)
            n_steps += sum(step.node != "stop" for step in result.steps)
        seconds = time.perf_counter() - start
        out[name] = {
            **list_metrics(lists, examples.target, items, at),
            "seconds_per_user": seconds / len(candidates),
        }
        if visits:
            out[name].update(steps=n_steps / len(candidates), nodes=dict(sorted(visits.items())))
    out.update(n_users=len(examples), k=candidates.shape[1], at=at, split=split,
               protocol=model.protocol)  # fmt: skip
    return out
