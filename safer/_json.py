"""JSON of NumPy values: the ``default=`` hook shared by gate files and CLI output."""

from __future__ import annotations

from typing import Any

import numpy as np


def numpy_default(obj: Any) -> Any:
    """Turn a NumPy scalar or array into plain Python; raise ``TypeError`` for anything else."""
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__}")
