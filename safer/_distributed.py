"""Data-parallel training across processes (``torchrun``): who am I, and the few collectives.

A fit is *distributed* when a :mod:`torch.distributed` process group is initialised — by
:func:`init_from_env` in a process started by ``torchrun`` (it reads ``WORLD_SIZE``, ``RANK``,
``MASTER_ADDR``, ...), or by the caller. Otherwise every function here is a no-op on one process
and :mod:`torch.distributed` is never touched, so the single-process path is the plain one.

What the shared trainer does with it (:class:`safer._learnable.Trainer`):

- every rank starts from rank 0's weights (:func:`broadcast_module`);
- each rank computes the loss of its own part of each global batch (the models of
  :mod:`safer.models` give each rank the decisions of its own stays, :func:`shard_of`; the
  time-series editor every rank's share of the rows it drew, :func:`part_of_batch`); the
  gradients are averaged weighted by each part's size (:func:`average_gradients`), so a step is
  the step of one process over the whole global batch, up to float rounding;
- the epoch's training loss and the validation score are reduced over the ranks
  (:func:`all_reduce_sum`), so every rank takes the same early-stopping decision;
- torch's generator is seeded per rank (:func:`rank_seed`; rank 0 keeps the config's seed) so
  dropout masks differ between ranks, reproducibly;
- only rank 0 writes a model folder (:meth:`safer._learnable.Learnable.save`).

The backend follows the training device (:func:`backend_for`): gloo on the CPU; on GPUs
``cpu:gloo,cuda:nccl`` (the gradients go through NCCL, the few CPU numbers through gloo) when
every rank of a node has a GPU of its own, else gloo for both (gloo's all-reduce and broadcast
take CUDA tensors: ranks sharing one GPU work, slowly).

Examples
--------
>>> current_world()
World(rank=0, size=1)
>>> rank_seed(7, 0), rank_seed(7, 1) != 7
(7, True)
>>> float(all_reduce_sum(torch.tensor([2.0]))[0])  # one process: unchanged
2.0
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from safer.errors import SaferError

__all__ = [
    "World",
    "all_gather_objects",
    "all_reduce_sum",
    "average_gradients",
    "backend_for",
    "broadcast_module",
    "current_world",
    "init_from_env",
    "part_of_batch",
    "rank_seed",
    "refuse_torchrun",
    "shard_of",
    "shutdown",
]


@dataclass(frozen=True)
class World:
    """This process's place among the training processes: ``rank`` of ``size``."""

    rank: int = 0
    size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints results (rank 0)."""
        return self.rank == 0


def _initialised() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def current_world() -> World:
    """The world of the initialised process group, else one process (``World(0, 1)``)."""
    if not _initialised():
        return World()
    return World(torch.distributed.get_rank(), torch.distributed.get_world_size())


def backend_for(device: torch.device, ranks_per_node: int | None = None) -> str:
    """The :mod:`torch.distributed` backend for training on ``device`` with ``ranks_per_node``
    processes on each node (default: ``LOCAL_WORLD_SIZE``, set by ``torchrun``).

    >>> backend_for(torch.device("cpu"))
    'gloo'
    """
    if device.type != "cuda":
        return "gloo"
    if ranks_per_node is None:
        ranks_per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    if ranks_per_node <= torch.cuda.device_count():
        return "cpu:gloo,cuda:nccl"
    warnings.warn(
        f"{ranks_per_node} ranks per node share {torch.cuda.device_count()} GPU(s): NCCL needs "
        "a GPU per rank, so the gradients go through gloo (slow); use --nproc-per-node "
        "<= the GPUs of a node",
        RuntimeWarning,
        stacklevel=2,
    )
    return "gloo"


def init_from_env(timeout_s: float = 1800.0, device: torch.device | None = None) -> World:
    """Join the process group ``torchrun`` describes in the environment, with the backend for
    training on ``device`` (default: the CPU; :func:`backend_for`). On a GPU this process's
    device becomes torch's current CUDA device.

    Without ``WORLD_SIZE`` > 1 in the environment (a plain ``python -m safer``), nothing
    happens and one process is returned. Call :func:`shutdown` when done.
    """
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1 or _initialised():
        return current_world()
    if not torch.distributed.is_available():
        raise SaferError(
            "WORLD_SIZE > 1 but this torch build has no torch.distributed; run one process "
            "(python -m safer ...) or install a torch with distributed support"
        )
    from datetime import timedelta

    device = device or torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        torch.distributed.init_process_group(
            backend_for(device), timeout=timedelta(seconds=timeout_s)
        )
    except (RuntimeError, ValueError) as exc:
        raise SaferError(
            f"could not join the torchrun process group ({exc}); check --nnodes, "
            "--rdzv-endpoint and that every node can reach the endpoint"
        ) from None
    return current_world()


def refuse_torchrun(command: str) -> None:
    """Raise :class:`~safer.errors.SaferError` when ``torchrun`` launched a command that does
    not train data-parallel (every process would train its own copy into the same folder)."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise SaferError(
            f"`{command}` does not train data-parallel: under torchrun every process would "
            "train its own copy into the same folder. Run it as one process (without torchrun);"
            " `safer train` is the command that trains across processes"
        )


def shutdown() -> None:
    """Leave the process group (no-op when there is none)."""
    if _initialised():
        torch.distributed.destroy_process_group()


def rank_seed(seed: int, rank: int) -> int:
    """The torch seed of ``rank``: ``seed`` itself on rank 0, an independent stream elsewhere
    (numpy's SeedSequence of ``(seed, rank)``), the same on every run."""
    if rank == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(rank)]).generate_state(1)[0])


def shard_of(keys: np.ndarray, world: World | None = None) -> np.ndarray:
    """Mask of the entries of ``keys`` (e.g. the stay id of each decision) this rank owns.

    The distinct keys, sorted, are dealt to the ranks in turn, so every entry of one key (every
    decision of one stay) lands on one rank and the ranks get near-equal numbers of keys.

    >>> shard_of(np.array([5, 3, 5, 9]), World(1, 2)).tolist()
    [True, False, True, False]
    """
    world = world or current_world()
    keys = np.asarray(keys)
    if not world.distributed:
        return np.ones(len(keys), dtype=bool)
    distinct, position = np.unique(keys, return_inverse=True)
    return (position % world.size) == world.rank


def part_of_batch(world: World | None = None) -> slice:
    """This rank's rows of a global batch that every rank drew alike (rows ``rank,
    rank + size, ...``; all of them on one process).

    For trainers that draw their batches from a generator seeded the same on every rank (the
    time-series editor draws windows, noise levels and noise that way): each rank computes the
    loss of its part of the one-process batch.

    >>> part_of_batch(World(1, 2)), part_of_batch()
    (slice(1, None, 2), slice(0, None, 1))
    """
    world = world or current_world()
    return slice(world.rank, None, world.size)


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Elementwise sum of ``values`` over the ranks (float64; unchanged on one process)."""
    out = values.detach().to(torch.float64).clone()
    if _initialised():
        torch.distributed.all_reduce(out)
    return out


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers into ``module`` on every rank."""
    if not _initialised():
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            torch.distributed.broadcast(tensor, src=0)


def average_gradients(params: Sequence[nn.Parameter], weight: float) -> float:
    """Replace each gradient by the ``weight``-weighted mean of the ranks' gradients.

    ``weight`` is this rank's share of the global batch (its number of decisions; 0 when it
    had none, its gradients are then ignored). A parameter without a gradient on every rank
    keeps none. Returns the summed weight (0: no rank had data, skip the step).
    """
    if not _initialised():
        return float(weight)
    grads = [p.grad for p in params]
    device = params[0].device if params else torch.device("cpu")  # one buffer, on the model's
    as_float = dict(dtype=torch.float64, device=device)
    has = torch.tensor([g is not None for g in grads], **as_float)
    flat = [
        (g.detach().to(torch.float64) * weight).reshape(-1)
        if g is not None
        else torch.zeros(p.numel(), **as_float)
        for p, g in zip(params, grads, strict=True)
    ]
    buffer = torch.cat([*flat, has, torch.tensor([float(weight)], **as_float)])
    torch.distributed.all_reduce(buffer)
    total = float(buffer[-1])
    offset = 0
    for p, part in zip(params, flat, strict=True):
        n = part.numel()
        chunk = buffer[offset : offset + n]
        offset += n
        p.grad = (chunk / total if total > 0 else chunk).reshape(p.shape).to(p.dtype)
    for p, seen in zip(params, buffer[offset : offset + len(params)].tolist(), strict=True):
        if seen == 0:
            p.grad = None
    return total


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (``[obj]`` on one process)."""
    if not _initialised():
        return [obj]
    out: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out
