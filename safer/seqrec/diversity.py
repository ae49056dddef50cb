"""Beyond accuracy: item vectors, the unpopular-item set, and the metrics of top-k lists.

One definition of each, shared by the evaluation (:func:`~safer.seqrec.protocol.evaluate_feedback`)
and by the SMORL head's diversity and novelty rewards (:mod:`safer.seqrec.heads.smorl`), both
computed on the *training part* of the data (:func:`~safer.seqrec.protocol.training_part`), so
nothing held out shapes them and every model is measured with the same yardstick:

- item vectors (:func:`item_vectors`): frozen, data-derived item embeddings: the truncated SVD of
  the log-scaled co-occurrence counts of items at most ``window`` steps apart in a user's
  training items, rows scaled to unit length (items never seen in training: zero vectors);
- unpopular items (:func:`unpopular_items`): every item outside the ``popular_fraction`` most
  frequent training items (20 % by default, the usual short-head cut);
- list metrics at k (:class:`ListMetrics`): *coverage* (share of the catalogue that appears in
  any top-k list), *intra-list diversity* (mean ``1 - cosine`` between the item vectors of two
  items of a list), *novelty* (mean share of unpopular items in a list) and *repetitiveness*
  (mean share of a list the user has in the input history, the state the model saw);
- attribute metrics of single lists (used by the rerankers, :mod:`safer.seqrec.rerank`):
  *genre coverage* (:func:`genre_coverage`: the share of all genres that the items of a list
  carry) and the *exposure gap* between two item groups (:func:`exposure_gap`, e.g. films
  released before / from a split year).

Examples
--------
>>> import pandas as pd
>>> from safer.seqrec.data import SequenceData
>>> log = pd.DataFrame({"user": list("aaabbb"), "item": list("xyzxyw"), "timestamp": [1, 2, 3] * 2})
>>> train = SequenceData.from_interactions(log)
>>> unpopular_items(train, popular_fraction=0.5).tolist()  # x and y are the popular half
[False, False, False, True, True]
>>> item_vectors(train, dim=2).shape
(5, 2)
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils.extmath import randomized_svd

from safer.seqrec.data import SequenceData

__all__ = [
    "ListMetrics",
    "exposure",
    "exposure_gap",
    "genre_coverage",
    "item_counts",
    "item_vectors",
    "unpopular_items",
]


def item_counts(train: SequenceData) -> np.ndarray:
    """``(n_items + 1,)`` float64: how often each item id occurs in ``train`` (id 0: 0)."""
    counts = np.zeros(train.n_items + 1)
    for seq in train.sequences:
        np.add.at(counts, seq, 1.0)
    return counts


def unpopular_items(train: SequenceData, popular_fraction: float = 0.2) -> np.ndarray:
    """``(n_items + 1,)`` bool: True for items outside the ``popular_fraction`` most frequent
    ones of ``train`` (ties: the lower id is the more popular); id 0 (padding) is False."""
    counts = item_counts(train)[1:]
    n_popular = math.ceil(popular_fraction * len(counts))
    order = np.argsort(-counts, kind="stable")  # most frequent first
    unpopular = np.ones(len(counts) + 1, bool)
    unpopular[0] = False
    unpopular[order[:n_popular] + 1] = False
    return unpopular


def item_vectors(train: SequenceData, dim: int = 32, window: int = 5, seed: int = 0) -> np.ndarray:
    """``(n_items + 1, d)`` float32 unit-length item vectors from co-occurrence in ``train``.

    Items ``1..window`` steps apart in a user's sequence co-occur (both directions); the counts,
    ``log(1 + count)``, are factorised by a seeded randomized SVD of rank
    ``d = min(dim, n_items - 1)``; an item's vector is its row of ``U * sqrt(S)`` scaled to unit
    length (zero for items that co-occur with nothing, and for the padding id 0).
    """
    n = train.n_items + 1
    lengths = np.array([len(s) for s in train.sequences], dtype=np.int64)
    flat = np.concatenate(train.sequences) if len(lengths) else np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(lengths)), lengths)
    rows, cols = [], []
    for d in range(1, window + 1):
        same = owner[:-d] == owner[d:]
        a, b = flat[:-d][same], flat[d:][same]
        rows += [a, b]
        cols += [b, a]
    rank = min(dim, train.n_items - 1)
    if rank < 1 or not sum(len(r) for r in rows):
        return np.zeros((n, max(rank, 1)), np.float32)
    r, c = np.concatenate(rows), np.concatenate(cols)
    matrix = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    matrix.sum_duplicates()
    matrix.data = np.log1p(matrix.data)
    u, s, _ = randomized_svd(matrix, rank, random_state=seed)
    vectors = u * np.sqrt(s)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 1e-12)
    return vectors.astype(np.float32)


class ListMetrics:
    """Accumulates coverage, intra-list diversity, novelty and repetitiveness of top-k lists.

    Parameters
    ----------
    train : SequenceData
        The training part: item vectors and the unpopular set come from it.
    ks : tuple of int
        List lengths to report.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": list("aabb"), "item": list("xyzw"), "timestamp": [1, 2] * 2})
    >>> train = SequenceData.from_interactions(log)
    >>> lists = ListMetrics(train, ks=(2,))
    >>> scores = torch.tensor([[0.0, 9.0, 8.0, 1.0, 0.0]])  # top 2: items 1 and 2
    >>> lists.add(scores, torch.tensor([[1, 0]]))  # the user's input holds item 1
    >>> out = lists.result()
    >>> out["coverage@2"], out["repetitiveness@2"]
    (0.5, 0.5)
    """

    def __init__(self, train: SequenceData, ks: tuple[int, ...]):
        self.ks = tuple(sorted(ks))
        self.n_items = train.n_items
        self.vectors = torch.from_numpy(item_vectors(train))
        self.unpopular = torch.from_numpy(unpopular_items(train))
        self.shown = {k: torch.zeros(self.n_items + 1, dtype=torch.bool) for k in self.ks}
        self.sums = {f"{m}@{k}": 0.0 for k in self.ks for m in ("ild", "novelty", "rep")}
        self.n = 0

    def add(self, scores: torch.Tensor, item_seq: torch.Tensor) -> None:
        """One batch: ``(B, n_items + 1)`` scores (column 0 never recommended) and the ``(B, T)``
        input items of each row (0 = padding)."""
        scores = scores.clone()
        scores[:, 0] = -torch.inf
        depth = min(max(self.ks), self.n_items)
        top = torch.topk(scores, depth, dim=1).indices  # (B, depth)
        in_state = (top[:, :, None] == item_seq[:, None, :]).any(-1)  # (B, depth)
        for k in self.ks:
            lst = top[:, : min(k, depth)]  # (B, k)
            size = lst.shape[1]
            self.shown[k][lst.reshape(-1)] = True
            self.sums[f"novelty@{k}"] += float(self.unpopular[lst].double().mean(1).sum())
            self.sums[f"rep@{k}"] += float(in_state[:, :size].double().mean(1).sum())
            if size > 1:
                v = self.vectors[lst]  # (B, k, d)
                sim = (v @ v.transpose(1, 2)).double()  # (B, k, k)
                off = sim.sum((1, 2)) - sim.diagonal(dim1=1, dim2=2).sum(1)
                self.sums[f"ild@{k}"] += float((1.0 - off / (size * (size - 1))).sum())
        self.n += len(scores)

    def result(self) -> dict[str, float]:
        out = {}
        n = max(self.n, 1)
        for k in self.ks:
            out[f"coverage@{k}"] = float(self.shown[k][1:].sum()) / max(self.n_items, 1)
            out[f"ild@{k}"] = self.sums[f"ild@{k}"] / n
            out[f"novelty@{k}"] = self.sums[f"novelty@{k}"] / n
            out[f"repetitiveness@{k}"] = self.sums[f"rep@{k}"] / n
        return out


def genre_coverage(lists: np.ndarray, item_genres: np.ndarray) -> np.ndarray:
    """``(N,)`` float64: the share of all genres (columns of ``item_genres``) carried by at
    least one item of each of the ``(N, k)`` ``lists`` of item ids.

    >>> genres = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 1]], bool)  # ids 0..3
    >>> genre_coverage(np.array([[1, 2], [1, 3]]), genres).round(3).tolist()
    [0.667, 0.667]
    """
    lists = np.asarray(lists)
    if item_genres.shape[1] == 0:
        return np.zeros(len(lists))
    covered = item_genres[lists].any(axis=1)  # (N, G)
    return covered.sum(1) / item_genres.shape[1]


def exposure(lists: np.ndarray, group: np.ndarray) -> np.ndarray:
    """``(N, 2)`` float64: the position-weighted exposure each of the ``(N, k)`` ``lists`` gives
    to group 0 and to group 1, where ``group`` maps an item id to 0, 1 or -1 (in neither group).

    An item at rank ``r`` (1-based) gets the exposure ``1 / log2(r + 1)`` (the DCG discount: the
    attention a user is assumed to give to rank ``r``)."""
    lists = np.asarray(lists)
    weight = 1.0 / np.log2(np.arange(2, lists.shape[1] + 2))  # (k,)
    member = group[lists]  # (N, k)
    return np.stack([((member == g) * weight).sum(1) for g in (0, 1)], axis=1)


def exposure_gap(lists: np.ndarray, group: np.ndarray) -> np.ndarray:
    """``(N,)`` float64 in [0, 1]: ``|E_0 - E_1| / (E_0 + E_1)`` per list, the exposure
    (:func:`exposure`) of two item groups: 0 when they get equal exposure, 1 when only one group
    is shown (0 for a list with no item of either group). Equal exposure is the target because
    the groups are defined to be of similar size (e.g. the catalogue split at its median year).

    >>> group = np.array([-1, 0, 0, 1])  # item 0: padding; items 1, 2 older; item 3 newer
    >>> exposure_gap(np.array([[1, 2], [3, 1], [1, 0]]), group).round(3).tolist()
    [1.0, 0.226, 1.0]
    """
    e = exposure(lists, group)
    total = e.sum(1)
    return np.divide(np.abs(e[:, 0] - e[:, 1]), total, out=np.zeros(len(e)), where=total > 0)
