from __future__ import annotations

import math

import pandas as pd
import torch

from safer.seqrec import SequenceData, leave_one_out
from safer.seqrec.protocol import rank_metrics, split_positions


def test_split_positions_match_recbole_leave_one_out():
    assert [list(r) for r in split_positions(1)] == [[], [], []]
    assert [list(r) for r in split_positions(2)] == [[1], [], []]
    assert [list(r) for r in split_positions(3)] == [[1], [], [2]]
    assert [list(r) for r in split_positions(6)] == [[1, 2, 3], [4], [5]]


def test_every_prefix_is_an_example_truncated_to_max_len():
    log = pd.DataFrame({"user": ["u"] * 6, "item": list("abcdef"), "timestamp": range(6)})
    splits = leave_one_out(SequenceData.from_interactions(log), max_len=3)
    train = splits["train"]
    assert train.target.tolist() == [2, 3, 4]
    # right-padded prefixes, at most the last 3 items before the target
    assert train.item_seq.tolist() == [[1, 0, 0], [1, 2, 0], [1, 2, 3]]
    assert splits["valid"].item_seq.tolist() == [[2, 3, 4]]
    assert splits["test"].item_seq.tolist() == [[3, 4, 5]]
    assert splits["test"].target.tolist() == [6]
    assert splits["test"].seq_len.tolist() == [3]


def test_rank_metrics_definitions():
    scores = torch.tensor([[0.0, 0.9, 0.8, 0.7, 0.1], [5.0, 0.1, 0.2, 0.3, 0.4]])
    m = rank_metrics(scores, torch.tensor([3, 1]), k=2)
    # row 0: target at rank 3 -> miss; row 1: padding excluded, item 1 is rank 4 -> miss
    assert m == {"hr@2": 0.0, "ndcg@2": 0.0, "mrr@2": 0.0, "recall@2": 0.0}
    m = rank_metrics(scores, torch.tensor([2, 4]), k=3)
    assert m["hr@3"] == 2.0 and m["recall@3"] == 2.0
    assert math.isclose(m["mrr@3"], 1 / 2 + 1 / 1)
    assert math.isclose(m["ndcg@3"], 1 / math.log2(3) + 1.0)
