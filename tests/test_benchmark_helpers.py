"""The benchmark scripts' helpers: the shared data readers (``benchmarks/_peer.py``), the large
run's stage reuse and the data-parallel profile's accounting."""

from __future__ import annotations

import cProfile
import json
import pstats

import pytest
import torch
from torch import nn

from benchmarks._peer import microlens_sample
from benchmarks.ddp_profile import _part_seconds
from benchmarks.large_run import _reusable
from safer._learnable import Trainer

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


def test_large_run_reuses_only_stages_it_has_output_and_records_for(tmp_path):
    outputs = {"simulate": tmp_path / "cohort.parquet", "train": tmp_path / "model"}
    assert _reusable(tmp_path, outputs) == {}  # nothing there: every stage runs
    outputs["simulate"].write_text("x")
    with pytest.raises(SystemExit, match="stages.json is missing"):
        _reusable(tmp_path, outputs)
    record = {"stage": "simulate", "seconds": 27.0, "peak_gib": 0.9, "result": {}}
    (tmp_path / "stages.json").write_text(json.dumps([record]))
    assert _reusable(tmp_path, outputs) == {"simulate": {**record, "reused": True}}
    outputs["train"].mkdir()  # a model without a record of its training
    with pytest.raises(SystemExit, match="no record of train"):
        _reusable(tmp_path, outputs)


def test_ddp_profile_finds_the_parts_of_a_real_training_step():
    net = nn.Linear(4, 1)
    opt = torch.optim.AdamW(net.parameters(), lr=0.01)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    profile = cProfile.Profile()
    profile.enable()
    Trainer(epochs=3, progress=False).run(
        net, opt, lambda: torch.arange(32).split(8),
        lambda idx: (nn.functional.mse_loss(net(x[idx]), y[idx]), len(idx)),
    )  # fmt: skip
    profile.disable()
    parts, steps = _part_seconds(pstats.Stats(profile))
    assert steps == 3 * 4  # every optimiser step counted once
    assert parts["backward"] > 0 and parts["optimiser"] > 0
    assert parts["gradient all-reduce"] == 0  # one process averages nothing


def test_a_benchmark_page_never_shows_a_database_password():
    """The command line a page and a saved run record: the URL's password masked, the rest
    (user, host, port, database, other flags) as typed."""
    from benchmarks._report import command_line

    argv = ["store_load.py", "--db", "postgresql+psycopg2://rev:pa:ss@127.0.0.1:5432/load", "-x"]
    line = command_line(argv)
    assert "pa:ss" not in line and "ss@" not in line
    assert line == "python store_load.py --db postgresql+psycopg2://rev:***@127.0.0.1:5432/load -x"
    assert (
        command_line(["s.py", "--db", "sqlite:///tmp/x.db"])
        == "python s.py --db sqlite:///tmp/x.db"
    )
