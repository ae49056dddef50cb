from __future__ import annotations

import pandas as pd
import pytest

from safer.errors import SaferError
from safer.seqrec import SeqrecDataError, SequenceData, read_atomic, read_interactions


def test_atomic_types_are_parsed(tmp_path):
    p = tmp_path / "x.item"
    p.write_text("item_id:token\tgenre:token_seq\tyear:float\temb:float_seq\na\tx y\t1999\t0.5 1\n")
    frame = read_atomic(p)
    assert frame.loc[0, "genre"] == ["x", "y"]
    assert frame.loc[0, "year"] == 1999.0
    assert frame.loc[0, "emb"] == [0.5, 1.0]
    assert frame.loc[0, "item_id"] == "a"


@pytest.mark.parametrize(
    "content, match",
    [
        ("", "empty"),
        ("user_id:token\titem_id:token\ttimestamp:float\n", "no rows"),
        ("user_id:token\titem_id:blob\ttimestamp:float\nu\ti\t1\n", "unknown type 'blob'"),
        ("user_id:token\ttimestamp:float\nu\t1\n", r"missing column\(s\) \['item'\]"),
        ("user_id\titem_id:token\nu\ti\n", "not 'name:type'"),
    ],
)
def test_bad_atomic_files_raise_clear_errors(tmp_path, content, match):
    p = tmp_path / "bad.inter"
    p.write_text(content)
    with pytest.raises(SeqrecDataError, match=match):
        read_interactions(p)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(SaferError, match="does not exist"):
        read_interactions(tmp_path / "nope.inter")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(SeqrecDataError, match="unknown format"):
        read_interactions(tmp_path / "x.json")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_plain_tables_read_with_rating(tmp_path, suffix):
    log = pd.DataFrame(
        {"user": ["1", "1", "2"], "item": ["a", "b", "a"], "timestamp": [5, 3, 1], "rating": 4.0}
    )
    p = tmp_path / f"log{suffix}"
    log.to_csv(p, index=False) if suffix == ".csv" else log.to_parquet(p)
    out = read_interactions(p)
    assert list(out.columns) == ["user", "item", "timestamp", "rating"]
    data = SequenceData.from_interactions(out)
    # user 1 sorted by time: b (t=3) then a (t=5); ids follow first appearance (a=1, b=2)
    assert data.sequences[0].tolist() == [2, 1]


def test_time_ties_keep_file_order():
    log = pd.DataFrame({"user": ["u"] * 3, "item": ["c", "a", "b"], "timestamp": [2.0, 1.0, 1.0]})
    data = SequenceData.from_interactions(log)
    tokens = [data.item_tokens[i - 1] for i in data.sequences[0]]
    assert tokens == ["a", "b", "c"]


def test_unknown_item_against_a_vocabulary():
    log = pd.DataFrame({"user": ["u"], "item": ["zzz"], "timestamp": [1.0]})
    with pytest.raises(SeqrecDataError, match="not in the model's vocabulary"):
        SequenceData.from_interactions(log, item_tokens=("a", "b"))
