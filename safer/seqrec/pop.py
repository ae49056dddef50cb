"""Popularity: rank items by how often they occur in the training interactions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from safer.seqrec.data import SequenceData
from safer.seqrec.diversity import item_counts
from safer.seqrec.protocol import Examples, check_holdout, check_protocol, training_part
from safer.seqrec.recommender import SequentialRecommender

__all__ = ["ItemCounts", "Pop", "PopConfig"]


@dataclass
class PopConfig:
    """Popularity has nothing to learn but the counts; ``protocol`` picks the ranking rule,
    ``holdout`` / ``tail_fraction`` the held-out targets (see
    :class:`~safer.seqrec.config.NeuralConfig`).

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": ["u"] * 10, "item": list("abcdefghij"), "timestamp": range(10)})
    >>> data = SequenceData.from_interactions(log)
    >>> model = Pop(PopConfig(holdout="tail", tail_fraction=0.2)).fit(data)
    >>> len(model.splits(data)["test"])  # every step of the held-out tail
    2
    """

    protocol: str = "recbole"
    max_len: int = 50
    holdout: str = "last"
    tail_fraction: float = 0.1


class ItemCounts(nn.Module):
    """The learned state of :class:`Pop`: one count per item id (buffer ``counts``, float64)."""

    def __init__(self, counts: torch.Tensor):
        super().__init__()
        self.register_buffer("counts", counts.to(torch.float64))


class Pop(SequentialRecommender):
    """Recommend the items seen most often in training (the same list for everyone).

    Counts every item of each user's training part (all items but the validation and test
    targets, :func:`~safer.seqrec.protocol.training_part`), like RecBole's Pop on the same
    split.

    Attributes
    ----------
    counts_ : numpy.ndarray
        ``(n_items + 1,)`` training count of each item id (id 0, padding, counts 0).

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": list("aabb"), "item": list("xyxx"), "timestamp": [1, 2] * 2})
    >>> Pop().fit(SequenceData.from_interactions(log)).counts_.tolist()
    [0.0, 3.0, 1.0]
    """

    Config = PopConfig
    artifact_kind = "pop"

    def fit(self, data: SequenceData, progress: bool = False) -> Pop:
        cfg = self.config
        check_protocol(cfg.protocol)
        check_holdout(cfg.holdout, cfg.tail_fraction)
        counts = item_counts(training_part(data, cfg.holdout, cfg.tail_fraction))
        self.item_tokens_ = data.item_tokens
        self.net_ = ItemCounts(torch.from_numpy(counts))
        self.history_ = {}
        return self._finish_fit()

    @property
    def counts_(self) -> np.ndarray:
        return self.net_.counts.numpy()

    def _score_batch(self, batch: Examples) -> torch.Tensor:
        scores = self.net_.counts.to(torch.float32)  # (n_items + 1,)
        return scores[None, :].expand(len(batch), -1).clone()  # (B, n_items + 1)

    def _restore(self, meta: dict[str, Any]) -> None:
        super()._restore(meta)
        self.net_ = ItemCounts(torch.zeros(len(self.item_tokens_) + 1))
