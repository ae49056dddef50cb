"""Data-parallel training (torchrun / torch.distributed, gloo): two ranks train the model one
process trains, only rank 0 saves, the single-process path never touches torch.distributed.

Tolerance of the equivalence: with dropout off, every step of the two ranks is, in exact
arithmetic, the one-process step over the same global batch (each rank's mean loss over its
stays' decisions, gradients averaged weighted by the counts). What differs is float rounding:
the batch mean is summed in two parts and the average is taken in float64, ~1e-7 relative per
step; after the few dozen Adam steps here the probabilities differ by ~1e-7 (7.5e-8 measured).
We allow 1e-5; another seed moves them by more than 1e-3, and so would a real defect (a rank
training on the other's stays, a gradient summed instead of averaged, a rank starting from its
own weights).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from safer import _distributed
from safer._distributed import World, rank_seed, shard_of
from safer.cohorts import simulate_cohort
from safer.models import load_model, make_model

TINY = dict(
    use_notes=False, dropout=0.0, d_model=16, n_heads=2, epochs=2, survivor_epochs=2,
    finetune_epochs=1, batch_size=64, patience=5,
)  # fmt: skip
TOL = 1e-5
TSEDIT = dict(d_model=16, n_heads=2, n_layers=1, diffusion_steps=50, train_steps=40,
              batch_size=32, steps_per_epoch=20)  # fmt: skip


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(n_stays=40, seed=3, progress=False)


def _rank_fit(rank: int, size: int, init_file: str, cohort, out: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=size
    )
    try:
        model = make_model("safer", seed=1, **TINY).fit(cohort, progress=False)
        model.save(Path(out) / f"model-{rank}")  # only rank 0 writes
        np.save(Path(out) / f"proba-{rank}.npy", model.predict_proba(cohort))
    finally:
        _distributed.shutdown()


def test_two_ranks_train_the_one_process_model(cohort, tmp_path):
    torch.set_num_threads(1)
    single = make_model("safer", seed=1, **TINY).fit(cohort, progress=False)
    assert not torch.distributed.is_initialized()  # the plain path never joins a group
    assert single.world_size_ == 1
    mp.spawn(
        _rank_fit, args=(2, str(tmp_path / "init"), cohort, str(tmp_path)), nprocs=2, join=True
    )
    assert (tmp_path / "model-0" / "model.json").is_file()
    assert not (tmp_path / "model-1").exists()  # rank 1 saved nothing
    meta = json.loads((tmp_path / "model-0" / "model.json").read_text())
    assert meta["world_size"] == 2
    loaded = load_model(tmp_path / "model-0")
    want = single.predict_proba(cohort)
    p0, p1 = (np.load(tmp_path / f"proba-{r}.npy") for r in (0, 1))
    np.testing.assert_array_equal(p0, p1)  # the ranks end with the same weights
    np.testing.assert_allclose(loaded.predict_proba(cohort), p0, atol=1e-7)
    assert np.abs(p0 - want).max() < TOL
    assert np.abs(want - make_model("safer", seed=2, **TINY).fit(cohort, progress=False)
                  .predict_proba(cohort)).max() > 100 * TOL  # fmt: skip


def test_stays_are_dealt_whole_and_seeds_differ_by_rank():
    stays = np.array([4, 4, 9, 1, 9, 7, 1])
    parts = [shard_of(stays, World(r, 2)) for r in (0, 1)]
    assert (parts[0] ^ parts[1]).all()  # every decision on exactly one rank
    for part in parts:  # a stay's decisions never split
        assert not set(stays[part]) & set(stays[~part])
    assert shard_of(stays).all()
    assert rank_seed(5, 0) == 5 and len({rank_seed(5, r) for r in range(4)}) == 4
    assert rank_seed(5, 1) == rank_seed(5, 1)


NOTES = [f"MAP {60 + i}. Levo at 0.0{i}." for i in range(5)]


def _rank_encode(rank: int, size: int, init_file: str, cache: str, out: str) -> None:
    from safer.models.encoders import NoteEncoder

    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=size
    )
    try:
        encoder = NoteEncoder(cache_dir=cache, progress=False)
        with encoder.across_ranks():
            vectors = encoder.encode(NOTES)
        np.save(Path(out) / f"notes-{rank}.npy", vectors)
        np.save(Path(out) / f"encoded-{rank}.npy", np.array([encoder.n_encoded]))
    finally:
        _distributed.shutdown()


@pytest.mark.slow  # two processes loading the note encoder
def test_ranks_encode_each_note_once_into_the_shared_cache(tmp_path):
    from safer.models.encoders import NoteEncoder

    cache = tmp_path / "cache"
    mp.spawn(_rank_encode, args=(2, str(tmp_path / "init"), str(cache), str(tmp_path)), nprocs=2)
    counts = [int(np.load(tmp_path / f"encoded-{r}.npy")[0]) for r in (0, 1)]
    assert sum(counts) == 10 and min(counts) >= 4  # 10 sentences, split between the ranks
    alone = NoteEncoder(cache_dir=tmp_path / "fresh", progress=False).encode(NOTES)
    for r in (0, 1):
        np.testing.assert_allclose(np.load(tmp_path / f"notes-{r}.npy"), alone, atol=1e-5)
    cached = NoteEncoder(cache_dir=cache, progress=False)
    cached.encode(NOTES)
    assert cached.n_encoded == 0  # both ranks' shards are in the shared cache


@pytest.mark.slow
def test_torchrun_cli_trains_one_model(cohort, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    path = tmp_path / "cohort.parquet"
    cohort.to_parquet(path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run(
        [
            torchrun, "--nproc-per-node", "2", "--standalone", "-m", "safer", "train",
            "--cohort", str(path), "--variant", "safer-n", "--epochs", "1",
            "--finetune-epochs", "1", "--d-model", "16", "--threads", "1", "--out",
            str(tmp_path / "model"), "--json",
        ],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)  # one summary: rank 0's
    assert summary["processes"] == 2
    assert load_model(tmp_path / "model").world_size_ == 2


def _editor(seed: int = 0):
    from safer.tsedit import DiffusionEditor, TseditConfig, public_windows

    config = TseditConfig(window=16, seed=seed, **TSEDIT)
    return DiffusionEditor(config).fit(public_windows("co2", window=16), progress=False)


def _weights(editor) -> np.ndarray:
    return torch.cat([t.detach().reshape(-1) for t in editor.model_.state_dict().values()]).numpy()


def _gradient(editor) -> tuple[np.ndarray, float]:
    """The (rank-averaged) gradient of one training batch at the fitted weights, and this
    rank's loss weight of it."""
    from safer.tsedit import public_windows

    net = editor.model_
    net.train()
    tensors = editor._train_tensors(public_windows("co2", window=16))
    loss, share = editor._loss(tensors, net, torch.Generator().manual_seed(5))
    loss.backward()
    params = list(net.parameters())
    _distributed.average_gradients(params, share)
    return torch.cat([p.grad.reshape(-1) for p in params]).numpy(), share


def _rank_tsedit(rank: int, size: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=size
    )
    try:
        editor = _editor()
        editor.save(Path(out) / f"editor-{rank}")  # only rank 0 writes
        np.save(Path(out) / f"weights-{rank}.npy", _weights(editor))
        gradient, share = _gradient(editor)
        np.save(Path(out) / f"gradient-{rank}.npy", np.append(gradient, share))
    finally:
        _distributed.shutdown()


def test_two_ranks_train_the_one_process_time_series_editor(tmp_path):
    """Every rank draws the one-process batch and runs the network on its half, so a batch's
    averaged gradient is the one-process gradient up to float rounding (measured ~1e-6 of a
    largest component ~1.4). The trained weights are compared more loosely: Adam divides each
    gradient by its running size, so a component whose gradient is ~0 (a few % of them here)
    moves by up to the learning rate (2e-3) on rounding alone (measured 4e-4 after 40 steps;
    another seed differs by ~0.8)."""
    from safer.tsedit import DiffusionEditor

    torch.set_num_threads(1)
    one = _editor()
    single, (single_grad, whole) = _weights(one), _gradient(one)
    mp.spawn(_rank_tsedit, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    w0, w1 = (np.load(tmp_path / f"weights-{r}.npy") for r in (0, 1))
    np.testing.assert_array_equal(w0, w1)  # the ranks end with the same weights
    assert not (tmp_path / "editor-1").exists()  # rank 1 saved nothing
    assert DiffusionEditor.load(tmp_path / "editor-0").world_size_ == 2
    saved = [np.load(tmp_path / f"gradient-{r}.npy") for r in (0, 1)]
    shares = [float(a[-1]) for a in saved]
    assert min(shares) > 0 and sum(shares) == whole  # each rank ran its own part of the batch
    grad_gap = float(np.abs(saved[0][:-1] - single_grad).max())
    gap = float(np.abs(w0 - single).max())
    print(f"tsedit, 2 ranks vs 1 process: gradient gap {grad_gap:.1e}, weight gap {gap:.1e}")
    assert grad_gap < 1e-5 * max(1.0, float(np.abs(single_grad).max()))
    assert gap < 5e-3
    assert np.abs(single - _weights(_editor(seed=1))).max() > 100 * 5e-3


def test_trainers_that_are_not_data_parallel_refuse_torchrun(tmp_path, monkeypatch, capsys):
    from safer.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    args = ["seqrec", "train", "--data", "co2", "--model", "sasrec", "--out", str(tmp_path / "m")]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert "does not train data-parallel" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
