"""Where a model trains: the CPU (the default) or a CUDA GPU.

A device is named as on the command line (``safer train --device``): ``cpu``, ``cuda`` (this
process's GPU: under ``torchrun`` the one of its local rank), ``cuda:N``, or ``auto`` (``cuda``
when torch sees a GPU, else ``cpu``). :func:`resolve_device` turns the name into a
:class:`torch.device` or raises :class:`~safer.errors.SaferError` saying why it cannot be used.

Only training moves: the models of :mod:`safer.models` build their input tensors and network on
the device for ``fit`` and hand back a network on the CPU, so a saved model, its content hash and
everything downstream (scoring, gates, decisions) are the same whatever it trained on.

Examples
--------
>>> resolve_device("cpu")
device(type='cpu')
>>> resolve_device("tpu")
Traceback (most recent call last):
...
safer.errors.SaferError: unknown device 'tpu': choose cpu, cuda, cuda:N or auto
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import torch

from safer.errors import SaferError

__all__ = ["DEVICE_NAMES", "local_rank", "move", "resolve_device"]

#: How a device is named (``safer train --device``).
DEVICE_NAMES = "cpu, cuda, cuda:N or auto"

_NAME = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


def local_rank() -> int:
    """This process's rank on its node (``LOCAL_RANK``, set by ``torchrun``; 0 without it)."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def resolve_device(name: str | torch.device | None) -> torch.device:
    """The :class:`torch.device` that ``name`` (``None``: ``cpu``) stands for here.

    ``cuda`` without an index is the GPU of this process's local rank (``LOCAL_RANK`` modulo the
    GPUs torch sees), so ``torchrun --nproc-per-node N`` spreads its ranks over the node's GPUs.
    Raises :class:`~safer.errors.SaferError` for an unknown name, for ``cuda`` where torch sees
    no GPU (a CPU-only build or no driver) and for a GPU index this machine does not have.
    """
    if isinstance(name, torch.device):
        name = str(name)
    text = "cpu" if name is None else str(name).strip().lower()
    if not _NAME.match(text):
        raise SaferError(f"unknown device {name!r}: choose {DEVICE_NAMES}")
    if text == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if text == "auto":
        text = "cuda" if available else "cpu"
        if text == "cpu":
            return torch.device("cpu")
    if not available:
        build = torch.version.cuda
        why = (
            "this torch is a CPU-only build"
            if build is None
            else f"torch (built for CUDA {build}) finds no GPU or driver"
        )
        raise SaferError(
            f"--device {text}: {why}. Train on the CPU (--device cpu, the default), or install "
            "a CUDA build of torch on a machine with an NVIDIA GPU"
        )
    count = torch.cuda.device_count()
    index = int(text.split(":")[1]) if ":" in text else local_rank() % count
    if index >= count:
        raise SaferError(f"--device {text}: this machine has {count} GPU(s), cuda:0..{count - 1}")
    return torch.device("cuda", index)


def move(tensors: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """``tensors`` with every tensor value on ``device`` (other values, e.g. ``None``, kept).

    >>> move({"x": torch.ones(2), "table": None}, torch.device("cpu"))["table"] is None
    True
    """
    return {
        key: value.to(device) if isinstance(value, torch.Tensor) else value
        for key, value in tensors.items()
    }
