"""Plain JSON out of NumPy values: the one conversion gate files, reports, benchmark tables,
the store and the CLI's ``--json`` output share.

Examples
--------
>>> import numpy as np
>>> to_plain({"n": np.int64(3), "x": np.float32(0.5), "bad": float("nan"), "a": np.arange(2)})
{'n': 3, 'x': 0.5, 'bad': None, 'a': [0, 1]}
>>> dumps({"p": np.float64(0.25)})
'{"p": 0.25}'
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["to_plain", "dumps", "finite_or_none"]


def finite_or_none(x: Any) -> float | None:
    """``float(x)``, or ``None`` for ``None``, NaN and infinities.

    >>> finite_or_none(np.float32(2.0)), finite_or_none(float("inf"))
    (2.0, None)
    """
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def to_plain(obj: Any, *, paths_as_text: bool = False) -> Any:
    """Nested dicts / lists / tuples with NumPy scalars and arrays -> plain Python that strict
    JSON accepts: non-finite floats become ``None``, dict keys text, tuples lists. With
    ``paths_as_text`` anything else unknown (paths, timestamps) becomes its text; otherwise it
    is returned as it is (and :func:`json.dumps` will say what it cannot serialise)."""
    if isinstance(obj, dict):
        return {str(k): to_plain(v, paths_as_text=paths_as_text) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [to_plain(v, paths_as_text=paths_as_text) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return finite_or_none(obj)
    if obj is None or isinstance(obj, str):
        return obj
    if paths_as_text or isinstance(obj, Path):
        return str(obj)
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """Strict JSON text of ``obj`` after :func:`to_plain` (NaN and infinities become null)."""
    return json.dumps(to_plain(obj), allow_nan=False, **kwargs)
