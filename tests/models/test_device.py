"""Training on a GPU (``fit(device=...)``, ``safer train --device``): device names, clear refusals
where there is no GPU or the model cannot use one, and -- where torch sees a GPU -- every kind of
window model trains there, hands back a CPU model in the usual format, and learns what the CPU
learns; two ranks on GPUs train the one-process model.

The GPU tests skip on a machine without CUDA (CI has none); they ran on an H200 (see
docs/scaling.md, "A GPU"). Tolerance of the CPU/GPU comparison: with dropout off both fits take
the same batches from the same initial weights, so they differ by float rounding only (other
kernels, other summation orders), ~1e-7 relative per step; we allow 1e-4 on the probabilities
after the few dozen steps here, while another seed moves them by more than 1e-2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from safer import _distributed
from safer._device import resolve_device
from safer._distributed import backend_for
from safer.errors import SaferError
from safer.models import VARIANTS, load_model, make_model

GPU = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not GPU, reason="torch sees no CUDA GPU on this machine")
NO_DROPOUT = dict(
    use_notes=False, dropout=0.0, d_model=16, n_heads=2, epochs=2, survivor_epochs=2,
    finetune_epochs=1, batch_size=64, patience=5,
)  # fmt: skip
TOL = 1e-4


def test_device_names():
    assert resolve_device(None) == resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if GPU else "cpu")
    for bad in ("gpu", "cuda:x", "mps"):
        with pytest.raises(SaferError, match="choose cpu, cuda, cuda:N or auto"):
            resolve_device(bad)


@pytest.mark.skipif(GPU, reason="checks the message on a machine without a GPU")
def test_cuda_without_a_gpu_says_why():
    with pytest.raises(SaferError, match="--device cuda: .*Train on the CPU"):
        resolve_device("cuda")


def test_a_cpu_only_model_refuses_a_gpu_before_training(tiny_cohort):
    with pytest.raises(SaferError, match="cql trains on the CPU only"):
        make_model("cql").fit(tiny_cohort, device="cuda")


def test_notes_can_be_encoded_elsewhere_than_the_network_scores(tiny, tiny_cohort):
    model = make_model("safer", seed=0, **tiny)
    assert model.encode_notes_on("cpu") is model
    assert model._note_encoder(False).device == torch.device("cpu")
    if not GPU:
        with pytest.raises(SaferError, match="--device cuda"):
            model.encode_notes_on("cuda")


def test_the_device_is_recorded_and_saved(tiny_cohort, tmp_path):
    model = make_model("safer-n", seed=1, **NO_DROPOUT).fit(tiny_cohort, progress=False)
    assert model.device_ == "cpu"
    assert json.loads((model.save(tmp_path / "m") / "model.json").read_text())["device"] == "cpu"
    assert load_model(tmp_path / "m").device_ == "cpu"


def test_cli_refuses_an_unknown_device(tiny_cohort, tmp_path, capsys):
    from safer.cli import main

    path = tmp_path / "cohort.parquet"
    tiny_cohort.to_parquet(path)
    with pytest.raises(SystemExit) as info:
        main(["train", "--cohort", str(path), "--out", str(tmp_path / "m"), "--device", "tpu"])
    assert info.value.code == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_gpus_shared_by_ranks_fall_back_to_gloo():
    assert backend_for(torch.device("cpu"), 8) == "gloo"
    with pytest.warns(RuntimeWarning, match="NCCL needs a GPU per rank"):
        assert backend_for(torch.device("cuda"), torch.cuda.device_count() + 1) == "gloo"
    if torch.cuda.device_count() >= 2:
        assert backend_for(torch.device("cuda"), 2) == "cpu:gloo,cuda:nccl"


# ------------------------------------------------------------------------------- on a GPU
@needs_gpu
@pytest.mark.parametrize("variant", ["safer", "safer-n", "srl-rnn", "tahdnet", "hstu", "bc-mlp"])
def test_every_kind_of_window_model_trains_on_a_gpu(variant, tiny_cohort, tiny, tmp_path):
    if variant not in VARIANTS:  # a baseline: its own few fields
        tiny = {k: tiny[k] for k in ("d_model", "history", "cache_dir", "note_encoder")}
    model = make_model(variant, seed=0, **tiny).fit(tiny_cohort, progress=False, device="cuda")
    assert model.device_ == "cuda"
    assert all(p.device.type == "cpu" for p in model._network().parameters())
    proba = model.predict_proba(tiny_cohort)
    assert np.isfinite(proba).all() and np.allclose(proba.sum(1), 1, atol=1e-5)
    loaded = load_model(model.save(tmp_path / "m"))  # the usual folder; its hash checks out
    assert loaded.device_ == "cuda" and loaded.content_hash_ == model.content_hash_
    np.testing.assert_allclose(loaded.predict_proba(tiny_cohort), proba, atol=1e-6)


@needs_gpu
def test_a_gpu_learns_what_the_cpu_learns(tiny_cohort):
    def fit(seed, device):
        model = make_model("safer", seed=seed, **NO_DROPOUT)
        return model.fit(tiny_cohort, progress=False, device=device).predict_proba(tiny_cohort)

    cpu, gpu = fit(1, "cpu"), fit(1, "cuda")
    gap = float(np.abs(cpu - gpu).max())
    print(f"CPU vs GPU, same seed: max |p_cpu - p_gpu| = {gap:.2e}")
    assert gap < TOL
    assert np.abs(cpu - fit(2, "cpu")).max() > 100 * TOL


@needs_gpu
def test_notes_are_encoded_on_the_gpu_as_on_the_cpu(tiny_encoder, tmp_path):
    from safer.models.encoders import NoteEncoder

    notes = [f"MAP {60 + i}. Levo at 0.0{i}. Lactate 2.{i} -> 2.{i + 1}." for i in range(40)]
    on_cpu = NoteEncoder(tiny_encoder, cache_dir=tmp_path / "a", progress=False).encode(notes)
    gpu = NoteEncoder(tiny_encoder, cache_dir=tmp_path / "b", progress=False, device="cuda")
    np.testing.assert_allclose(gpu.encode(notes), on_cpu, atol=1e-5)
    assert next(gpu._model.parameters()).device.type == "cuda"


def _rank_fit(rank: int, size: int, init_file: str, cohort, out: str) -> None:
    device = torch.device("cuda", rank % torch.cuda.device_count())
    torch.cuda.set_device(device)
    torch.distributed.init_process_group(
        backend_for(device, size), init_method=f"file://{init_file}", rank=rank, world_size=size
    )
    try:
        (Path(out) / f"backend-{rank}.txt").write_text(str(torch.distributed.get_backend()))
        model = make_model("safer", seed=1, **NO_DROPOUT).fit(cohort, device=device,
                                                              progress=False)  # fmt: skip
        np.save(Path(out) / f"proba-{rank}.npy", model.predict_proba(cohort))
    finally:
        _distributed.shutdown()


@needs_gpu
def test_two_ranks_on_gpus_train_the_one_process_model(tiny_cohort, tmp_path):
    single = make_model("safer", seed=1, **NO_DROPOUT).fit(tiny_cohort, progress=False,
                                                           device="cuda")  # fmt: skip
    # one GPU here: the two ranks share it, over gloo (backend_for); with two, over NCCL
    mp.spawn(_rank_fit, args=(2, str(tmp_path / "init"), tiny_cohort, str(tmp_path)), nprocs=2)
    p0, p1 = (np.load(tmp_path / f"proba-{r}.npy") for r in (0, 1))
    np.testing.assert_array_equal(p0, p1)
    gap = float(np.abs(p0 - single.predict_proba(tiny_cohort)).max())
    print(f"2 ranks vs 1 process on GPU: max gap {gap:.2e}")
    assert gap < TOL


@needs_gpu
def test_ranks_with_a_gpu_each_train_over_nccl(tiny_cohort, tmp_path):
    """As many ranks as GPUs (one on a one-GPU machine): the gradients go through NCCL
    (``cpu:gloo,cuda:nccl``) and the ranks train the one-process model."""
    single = make_model("safer", seed=1, **NO_DROPOUT).fit(tiny_cohort, progress=False,
                                                           device="cuda")  # fmt: skip
    size = torch.cuda.device_count()
    mp.spawn(_rank_fit, args=(size, str(tmp_path / "init"), tiny_cohort, str(tmp_path)),
             nprocs=size)  # fmt: skip
    for rank in range(size):
        assert "nccl" in (tmp_path / f"backend-{rank}.txt").read_text()
        proba = np.load(tmp_path / f"proba-{rank}.npy")
        gap = float(np.abs(proba - single.predict_proba(tiny_cohort)).max())
        print(f"{size} rank(s) over NCCL vs 1 process: rank {rank} max gap {gap:.2e}")
        assert gap < TOL


@needs_gpu
def test_safer_train_on_a_gpu_from_the_command_line(tiny_cohort, tmp_path):
    path = tmp_path / "cohort.parquet"
    tiny_cohort.to_parquet(path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run(
        [
            sys.executable, "-m", "safer", "train", "--cohort", str(path), "--variant", "safer-n",
            "--epochs", "1", "--finetune-epochs", "1", "--d-model", "16", "--device", "cuda",
            "--out", str(tmp_path / "model"), "--json",
        ],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["device"] == "cuda"
    assert load_model(tmp_path / "model").device_ == "cuda"
