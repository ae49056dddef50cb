"""Readers of the text data sets (Amazon Scientific / Instruments, MicroLens-50k): tiny
synthetic files; the real folders of ../shared/data where present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from safer.seqrec import SeqrecDataError, read_text_dataset, read_titles

SHARED_DATA = Path(
    os.environ.get("SAFER_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)


def _amazon(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "users.tsv").write_text("u1\tB01 B02 B01\nu2\tB03 B02\nu3\tB04 B01 B03\n")
    (folder / "items.tsv").write_text(
        "B01\tNema17 motor &amp; cable\nB02\t Probe\nB03\tGlove\nB04\tLens\nB09\tunused\n"
    )
    return folder


def test_amazon_folder_reads_sequences_in_order_and_one_title_per_item(tmp_path):
    data, titles = read_text_dataset(_amazon(tmp_path))
    assert data.users == ("u1", "u2", "u3")
    assert [data.item_tokens[i - 1] for i in data.sequences[0]] == ["B01", "B02", "B01"]
    assert titles == ("Nema17 motor & cable", "Probe", "Glove", "Lens")


def test_microlens_folder_reads_pairs_and_titles_csv(tmp_path):
    (tmp_path / "pairs.tsv").write_text("1\t10 12\n2\t12 11 10\n")
    (tmp_path / "titles.csv").write_text('item,title\n10,"a dish, hot"\n11,cat # funny\n')
    data, titles = read_text_dataset(tmp_path)
    assert data.item_tokens == ("10", "12", "11")
    assert titles == ("a dish, hot", "", "cat # funny")  # item 12 has no title


def test_max_users_draws_a_reproducible_subset(tmp_path):
    folder = _amazon(tmp_path)
    one, _ = read_text_dataset(folder, max_users=2, seed=1)
    two, _ = read_text_dataset(folder, max_users=2, seed=1)
    assert one.users == two.users and len(one.users) == 2
    seen = {one.item_tokens[i - 1] for s in one.sequences for i in s}
    assert set(one.item_tokens) == seen  # the vocabulary is what the kept users saw


def test_bad_title_files_are_clear_errors(tmp_path):
    with pytest.raises(SeqrecDataError, match="does not exist"):
        read_titles(tmp_path / "items.tsv")
    (tmp_path / "items.tsv").write_text("B01 no tab here\n")
    with pytest.raises(SeqrecDataError, match="line 1: expected 'item<TAB>title'"):
        read_titles(tmp_path / "items.tsv")
    (tmp_path / "t.csv").write_text("id,name\n1,x\n")
    with pytest.raises(SeqrecDataError, match="item and title"):
        read_titles(tmp_path / "t.csv")
    with pytest.raises(SeqrecDataError, match="users.tsv or pairs.tsv"):
        read_text_dataset(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("name", "users", "items"),
    [("amazon-scientific", 12076, 20825), ("amazon-instruments", 10000, None),
     ("microlens-50k", 50000, None)],
)  # fmt: skip
def test_shared_text_data_sets(name, users, items):
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (../shared/data is not beside this clone)")
    data, titles = read_text_dataset(folder)
    assert len(data.users) == users
    if items is not None:
        assert data.n_items == items
    assert len(titles) == data.n_items
    assert sum(bool(t) for t in titles) / len(titles) > 0.95  # nearly every item has a title


def test_recbole_item_file_titles_are_its_title_column_joined(tmp_path):
    item = tmp_path / "toy.item"
    item.write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation Children's\n2\tGoldenEye\t1995\tAction\n"
    )
    assert read_titles(item) == {"1": "Toy Story", "2": "GoldenEye"}
    (tmp_path / "bare.item").write_text("item_id:token\tclass:token_seq\n1\tDrama\n")
    with pytest.raises(SeqrecDataError, match="title column"):
        read_titles(tmp_path / "bare.item")
