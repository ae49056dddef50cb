"""Click / purchase feedback in the data, the tail holdout, the RL papers' evaluation and the
beyond-accuracy list metrics."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from safer.seqrec import (
    ProtocolError,
    SeqrecDataError,
    SequenceData,
    holdout_examples,
    leave_one_out,
    make_model,
    read_interactions,
)
from safer.seqrec.diversity import ListMetrics, item_vectors, unpopular_items
from safer.seqrec.protocol import (
    evaluate_feedback,
    split_positions,
    training_part,
    training_windows,
)

SHARED_DATA = Path(
    os.environ.get("SAFER_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)
MICROLENS = SHARED_DATA / "microlens-50k" / "pairs.tsv"


@pytest.fixture(scope="module")
def data(synthetic_inter) -> SequenceData:
    return SequenceData.read(synthetic_inter)


# ------------------------------------------------------------------------------------ data
def test_purchases_come_from_ratings_or_a_purchase_column():
    log = pd.DataFrame(
        {"user": ["u"] * 4, "item": list("abcd"), "timestamp": range(4), "rating": [5, 4, 3, 5]}
    )
    assert SequenceData.from_interactions(log).purchases[0].tolist() == [True, False, False, True]
    at_four = SequenceData.from_interactions(log, purchase_rating=4)
    assert at_four.purchases[0].tolist() == [True, True, False, True]
    bought = log.assign(purchase=[0, 1, 0, 0])  # an explicit column wins over the rating
    assert SequenceData.from_interactions(bought).purchases[0].tolist() == [0, 1, 0, 0]
    clicks = SequenceData.from_interactions(log.drop(columns="rating"))
    assert clicks.purchases is None and not clicks.has_purchases
    assert clicks.purchase_flags(0).tolist() == [False] * 4


def test_purchases_follow_the_time_order(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text("user,item,timestamp,rating\nu,a,2,5\nu,b,1,1\n")
    data = SequenceData.read(p)
    assert [data.item_tokens[i - 1] for i in data.sequences[0]] == ["b", "a"]
    assert data.purchases[0].tolist() == [False, True]


def test_sequence_files(tmp_path):
    p = tmp_path / "pairs.tsv"
    p.write_text("7\t3 1 3\n8\t1\n")
    data = SequenceData.read(p)
    assert data.users == ("7", "8") and data.purchases is None
    assert [[data.item_tokens[i - 1] for i in s] for s in data.sequences] == [
        ["3", "1", "3"],
        ["1"],
    ]
    assert data.times[0].tolist() == [0.0, 1.0, 2.0]
    bad = tmp_path / "bad.tsv"
    bad.write_text("user\titem\textra\n")
    with pytest.raises(SeqrecDataError, match="line 1: expected 'user<TAB>item item"):
        read_interactions(bad)
    (tmp_path / "empty.tsv").write_text("\n")
    with pytest.raises(SeqrecDataError, match="empty"):
        read_interactions(tmp_path / "empty.tsv")


@pytest.mark.skipif(not MICROLENS.is_file(), reason=f"{MICROLENS} is absent (../shared/data)")
def test_microlens_reads_as_its_readme_says():
    data = SequenceData.read(MICROLENS)
    assert len(data.users) == 50_000 and data.n_interactions == 359_708
    assert data.purchases is None  # clicks only


# -------------------------------------------------------------------------------- holdouts
def test_tail_holdout_scores_every_step_of_the_tails(data):
    assert [list(r) for r in split_positions(20, "tail", 0.1)] == [
        list(range(1, 16)), [16, 17], [18, 19]
    ]  # fmt: skip
    assert split_positions(4, "tail", 0.1) == split_positions(4)  # too short: leave-one-out
    splits = holdout_examples(data, 10, "tail", 0.2)
    for part, name in enumerate(("train", "valid", "test")):
        ex = splits[name]
        for u, p, n, target in zip(ex.user, ex.position, ex.seq_len, ex.target, strict=True):
            seq = data.sequences[u]
            assert target == seq[p] and n == min(p, 10)
            assert p in split_positions(len(seq), "tail", 0.2)[part]
    counts = {name: len(splits[name]) for name in splits}
    assert counts["test"] == counts["valid"] > len(data.users)  # several steps per user
    assert sum(counts.values()) == data.n_interactions - len(data.users)


@pytest.mark.parametrize("holdout", ["last", "tail"])
def test_training_part_and_windows_hold_nothing_held_out(data, holdout):
    part = training_part(data, holdout, 0.2)
    train = holdout_examples(data, 10, holdout, 0.2)["train"]
    windows = training_windows(data, 10, holdout, 0.2)
    for u, seq in enumerate(data.sequences):
        end = split_positions(len(seq), holdout, 0.2)[0].stop
        assert part.sequences[u].tolist() == seq[:end].tolist()
        assert part.purchases[u].tolist() == data.purchases[u][:end].tolist()
    covered = sorted(
        (int(windows.user[w]), int(windows.start[w] + i + 1))
        for w in range(len(windows))
        for i in range(int(windows.seq_len[w]))
    )
    assert covered == sorted(zip(train.user.tolist(), train.position.tolist(), strict=True))


def test_examples_carry_the_target_time_and_purchase(data):
    test = leave_one_out(data, 10)["test"]
    for u, p, t, bought in zip(test.user, test.position, test.target_time, test.purchase,
                               strict=True):  # fmt: skip
        assert t == data.times[u][p] and bought == data.purchases[u][p]
    windows = training_windows(data, 10)
    real = windows.target_seq != 0
    assert (windows.target_time_seq[~real] == 0).all() and not windows.purchase_seq[~real].any()


def test_bad_holdouts_are_refused(data):
    with pytest.raises(ProtocolError, match="unknown holdout 'first'; use one of last, tail"):
        make_model("pop", holdout="first").fit(data)
    with pytest.raises(ProtocolError, match=r"tail_fraction must be in \(0, 0.5\)"):
        make_model("gru4rec", holdout="tail", tail_fraction=0.5).fit(data)


def test_models_train_and_evaluate_under_the_tail_holdout(data):
    model = make_model("gru4rec", holdout="tail", tail_fraction=0.2, epochs=1, max_len=10)
    result = model.fit(data).evaluate(data, "test")
    assert result["n_users"] == len(holdout_examples(data, 10, "tail", 0.2)["test"])
    pop = make_model("pop", holdout="tail", tail_fraction=0.2).fit(data)
    counts = np.zeros(data.n_items + 1)
    for seq in training_part(data, "tail", 0.2).sequences:
        np.add.at(counts, seq, 1)
    np.testing.assert_array_equal(pop.counts_, counts)


# ------------------------------------------------------------------------------ evaluation
def test_feedback_metrics_split_clicks_and_purchases(data):
    test = leave_one_out(data, 10)["test"]
    perfect = torch.nn.functional.one_hot(torch.as_tensor(test.target), data.n_items + 1).float()
    worst = -perfect

    def score(table):
        rows = {int(u): i for i, u in enumerate(test.user)}
        return lambda batch: table[[rows[int(u)] for u in batch.user]]

    best = evaluate_feedback(score(perfect), data, test, "recbole", training_part(data))
    assert best["click_hr@5"] == best["click_ndcg@20"] == best["purchase_ndcg@5"] == 1.0
    assert best["n_clicks"] == len(test) and best["n_purchases"] == int(test.purchase.sum())
    none = evaluate_feedback(score(worst), data, test, "recbole", training_part(data))
    assert none["click_hr@20"] == 0.0 == none["purchase_hr@20"]
    # a scorer that is right on purchases only: purchase metrics 1, clicks = purchase share
    mixed = torch.where(torch.as_tensor(test.purchase)[:, None], perfect, worst)
    half = evaluate_feedback(score(mixed), data, test, "recbole", training_part(data), ks=(10,))
    assert half["purchase_hr@10"] == 1.0
    assert half["click_hr@10"] == pytest.approx(test.purchase.mean())
    assert set(half) >= {"coverage@10", "ild@10", "novelty@10", "repetitiveness@10"}
    clicks_only = SequenceData(data.users, data.item_tokens, data.sequences, data.times)
    out = evaluate_feedback(score(perfect), clicks_only, test, "recbole", training_part(data))
    assert "purchase_hr@10" not in out and out["n_purchases"] == 0


def test_list_metrics_by_hand():
    log = pd.DataFrame({"user": list("aabb"), "item": list("wxyz"), "timestamp": [1, 2] * 2})
    train = SequenceData.from_interactions(log)  # ids: w=1 x=2 y=3 z=4
    lists = ListMetrics(train, ks=(2,))
    lists.vectors = torch.tensor([[0, 0], [1, 0], [0, 1], [1, 0], [0, 1]], dtype=torch.float32)
    lists.unpopular = torch.tensor([False, False, False, True, True])
    scores = torch.tensor([[0, 9, 8, 0, 0], [0, 9, 0, 8, 0]], dtype=torch.float32)
    lists.add(scores, torch.tensor([[2, 0], [4, 0]]))
    out = lists.result()
    assert out["coverage@2"] == 3 / 4  # items 1, 2, 3
    assert out["ild@2"] == pytest.approx((1.0 + 0.0) / 2)  # (w, x) orthogonal; (w, y) equal
    assert out["novelty@2"] == pytest.approx((0 + 0.5) / 2)  # y is unpopular
    assert out["repetitiveness@2"] == pytest.approx((0.5 + 0.0) / 2)  # x was in the input


def test_item_vectors_and_unpopular_items(data):
    train = training_part(data)
    v = item_vectors(train, dim=8)
    assert v.shape == (data.n_items + 1, 8) and not v[0].any()
    np.testing.assert_allclose(np.linalg.norm(v[1:], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(v, item_vectors(train, dim=8))  # seeded
    # ring data: an item's neighbours (+1, +2) are more alike than a far item
    near = [v[i] @ v[i % data.n_items + 1] for i in range(1, data.n_items + 1)]
    far = [v[i] @ v[(i + 19) % data.n_items + 1] for i in range(1, data.n_items + 1)]
    assert np.mean(near) > np.mean(far) + 0.2
    unpopular = unpopular_items(train, 0.25)
    assert not unpopular[0] and unpopular.sum() == data.n_items - math.ceil(0.25 * data.n_items)


def test_evaluate_feedback_of_a_model(data):
    model = make_model("sasrec", n_layers=1, hidden_size=16, epochs=1, max_len=10).fit(data)
    out = model.evaluate_feedback(data, "valid", ks=(5,))
    assert out["holdout"] == "last" and out["protocol"] == "recbole"
    assert out["n_clicks"] == len(leave_one_out(data, 10)["valid"])
    with pytest.raises(ProtocolError, match="unknown split"):
        model.evaluate_feedback(data, "train")
