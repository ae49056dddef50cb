"""The benchmark scripts' shared data helpers (``benchmarks/_peer.py``)."""

from __future__ import annotations

from benchmarks._peer import microlens_sample

CLICKED = {"1": "abc", "2": "defg", "3": "ahi"}  # user -> the items of its line, in order


def _pairs(tmp_path, clicked: dict[str, str]):
    """A ``pairs.tsv`` in MicroLens' format: ``user<TAB>item item ...``, one line per user."""
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{user}\t{' '.join(items)}\n" for user, items in clicked.items()))
    return path


def test_microlens_sample_keeps_whole_users_and_only_their_items(tmp_path):
    path = _pairs(tmp_path, CLICKED)
    data, description = microlens_sample(path, users=2, seed=0)
    assert description == "`microlens-50k/pairs.tsv`, a seeded sample of 2 of its 3 users"
    chosen = [str(u) for u in data.users]
    assert len(chosen) == 2
    assert [len(s) for s in data.sequences] == [len(CLICKED[u]) for u in chosen]
    # the catalogue is the sample's: an item only the left-out user clicked is not in it
    assert data.n_items == len({item for u in chosen for item in CLICKED[u]})
    assert microlens_sample(path, users=2, seed=0)[0].users == data.users  # same seed


def test_microlens_sample_of_everyone_and_of_an_absent_file(tmp_path):
    path = _pairs(tmp_path, CLICKED)
    for users in (0, 3, 5):  # 0: all; as many as or more than there are: all too
        data, description = microlens_sample(path, users=users)
        assert len(data.users) == 3 and description.endswith("all users")
    assert microlens_sample(tmp_path / "missing.tsv") is None
