"""Maximal marginal relevance (MMR) over genres: the fixed-weight diversity baseline.

Carbonell, J. and Goldstein, J. (1998). "The use of MMR, diversity-based reranking for
reordering documents and producing summaries". SIGIR '98, 335-336.

The list is filled greedily: at each position the candidate with the largest

    relevance_weight * rel(c) - (1 - relevance_weight) * max_{s placed} sim(c, s)

is placed, where ``rel`` is the backbone score scaled to [0, 1] over the candidates and ``sim``
the cosine similarity of two items' genre indicator vectors (0 when either has no genre). The
weight is fixed for every user (LLM4Rerank's point of comparison: one preset trade-off instead
of a goal the user states). Ties keep the backbone's order.

See :class:`MMR` for an example.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from safer.errors import SaferError
from safer.seqrec.rerank._base import ItemSide, Reranked, Reranker, minmax

__all__ = ["MMR", "MMRConfig"]


@dataclass
class MMRConfig:
    """``relevance_weight``: the fixed trade-off between backbone relevance (1) and genre
    novelty against the items already placed (0).

    Examples
    --------
    >>> MMRConfig(relevance_weight=1.0).relevance_weight  # the backbone's order, unchanged
    1.0
    >>> MMRConfig(relevance_weight=2.0)
    Traceback (most recent call last):
    ...
    safer.errors.SaferError: relevance_weight must be in [0, 1], got 2.0
    """

    relevance_weight: float = 0.5

    def __post_init__(self):
        if not 0.0 <= self.relevance_weight <= 1.0:
            raise SaferError(f"relevance_weight must be in [0, 1], got {self.relevance_weight}")


class MMR(Reranker):
    """Maximal marginal relevance with genre cosine similarity (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> from safer.seqrec.rerank._base import ItemSide
    >>> genres = np.array([[0, 0], [1, 0], [1, 0], [0, 1]], bool)  # items 1, 2: genre 0; 3: genre 1
    >>> side = ItemSide.build(["a", "b", "c"], genres, ("g0", "g1"), [1990, 1991, 1992])
    >>> MMR(MMRConfig(relevance_weight=0.5), side).rerank(
    ...     np.array([1, 2, 3]), np.array([3.0, 2.0, 1.0]), np.array([])).items.tolist()
    [1, 3, 2]
    """

    Config = MMRConfig
    name = "mmr"

    def __init__(self, config: MMRConfig | None = None, items: ItemSide | None = None):
        if items is None:
            raise SaferError("MMR needs the items' side information: MMR(config, ItemSide...)")
        super().__init__(config or MMRConfig(), items)
        g = items.genres.astype(float)
        norms = np.linalg.norm(g, axis=1, keepdims=True)
        self._unit = np.divide(g, norms, out=np.zeros_like(g), where=norms > 0)

    def rerank(self, candidates: np.ndarray, scores: np.ndarray, history: np.ndarray) -> Reranked:
        lam = self.config.relevance_weight
        candidates = np.asarray(candidates)
        rel = minmax(scores)
        vec = self._unit[candidates]  # (k, G)
        sim = vec @ vec.T  # (k, k)
        left = list(range(len(candidates)))
        placed: list[int] = []
        while left:
            redundancy = sim[np.ix_(left, placed)].max(1) if placed else np.zeros(len(left))
            value = lam * rel[left] - (1 - lam) * redundancy
            best = left[int(np.argmax(value))]  # first maximum: the backbone's order
            placed.append(best)
            left.remove(best)
        return Reranked(candidates[placed])
