"""Popularity: rank items by how often they occur in the training interactions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from safer.seqrec._base import SequentialRecommender
from safer.seqrec.data import SequenceData
from safer.seqrec.protocol import Examples, check_protocol, split_positions

__all__ = ["Pop", "PopConfig"]


@dataclass
class PopConfig:
    """Popularity has nothing to learn but the counts; ``protocol`` picks the ranking rule."""

    protocol: str = "recbole"
    max_len: int = 50


class Pop(SequentialRecommender):
    """Recommend the items seen most often in training (the same list for everyone).

    Counts every item of each user's training part (all items but the validation and test
    targets), like RecBole's Pop on the same split.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"user": list("aabb"), "item": list("xyxx"), "timestamp": [1, 2] * 2})
    >>> Pop().fit(SequenceData.from_interactions(log)).counts_.tolist()
    [0.0, 3.0, 1.0]
    """

    name = "pop"
    config_class = PopConfig

    def fit(self, data: SequenceData, progress: bool = False) -> Pop:
        check_protocol(self.config.protocol)
        counts = np.zeros(data.n_items + 1)
        for seq in data.sequences:
            train, _, _ = split_positions(len(seq))
            end = train.stop if len(train) else min(len(seq), 1)
            np.add.at(counts, seq[:end], 1.0)
        self.item_tokens_ = data.item_tokens
        self.counts_ = counts
        self.history_ = []
        return self

    def _score_batch(self, batch: Examples) -> torch.Tensor:
        scores = torch.as_tensor(self.counts_, dtype=torch.float32)
        return scores[None, :].expand(len(batch), -1).clone()

    def _state(self) -> dict[str, Any]:
        return {"counts": torch.as_tensor(self.counts_)}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.counts_ = state["counts"].numpy()
