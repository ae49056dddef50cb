"""Input checks shared by the conformal layer: every failure is a SaferError saying what to do."""

from __future__ import annotations

import hashlib
import math

import numpy as np

from safer.actions import N_ACTIONS
from safer.errors import SaferError

__all__ = [
    "ConformalInputError",
    "CalibrationTooSmallError",
    "GateMismatchError",
    "check_alpha",
    "check_proba",
    "check_labels",
    "check_groups",
    "check_vector",
    "min_calibration_size",
    "require_calibration_size",
    "array_hash",
]

_SUM_TOL = 1e-4


class ConformalInputError(SaferError, ValueError):
    """Probabilities, labels, groups or levels given to the conformal layer are invalid."""


class CalibrationTooSmallError(ConformalInputError):
    """The calibration split has too few decisions for the requested alpha."""


class GateMismatchError(SaferError, ValueError):
    """A gate is used with a model (or data) other than the one it was calibrated for."""


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """Return ``alpha`` as a float if it lies strictly inside (0, 1)."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ConformalInputError(f"{name} must be a number in (0, 1), got {alpha!r}") from None
    if not (0.0 < value < 1.0) or math.isnan(value):
        raise ConformalInputError(
            f"{name} must lie strictly between 0 and 1 (e.g. 0.1), got {alpha!r}"
        )
    return value


def check_proba(proba, name: str = "proba") -> np.ndarray:
    """Validate a (n, 25) array of probabilities whose rows sum to 1."""
    arr = np.asarray(proba, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != N_ACTIONS:
        raise ConformalInputError(
            f"{name} must have shape (n_decisions, {N_ACTIONS}), one column per action, "
            f"got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ConformalInputError(f"{name} is empty; pass at least one decision")
    if not np.all(np.isfinite(arr)):
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise ConformalInputError(
            f"{name} has NaN or infinite values in {bad} row(s); drop or impute those decisions "
            "before conformalizing"
        )
    if arr.min() < 0 or arr.max() > 1:
        raise ConformalInputError(f"{name} must lie in [0, 1]; pass probabilities, not logits")
    sums = arr.sum(axis=1)
    off = np.abs(sums - 1.0) > _SUM_TOL
    if off.any():
        first = int(np.flatnonzero(off)[0])
        raise ConformalInputError(
            f"{name} rows must sum to 1 (row {first} sums to {sums[first]:.6f}; "
            f"{int(off.sum())} row(s) off); apply a softmax or renormalise"
        )
    return arr


def check_labels(y, n: int, name: str = "y") -> np.ndarray:
    """Validate integer action labels in 0..24, one per decision."""
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ConformalInputError(f"{name} must have shape ({n},), got {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ConformalInputError(f"{name} must hold integer action ids 0..{N_ACTIONS - 1}")
    elif arr.dtype.kind not in "iu":
        raise ConformalInputError(f"{name} must hold integer action ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= N_ACTIONS)
    if bad.any():
        raise ConformalInputError(
            f"{name} has {int(bad.sum())} label(s) outside 0..{N_ACTIONS - 1} "
            f"(e.g. {int(arr[bad][0])}); actions are 5 * fluid_bin + vaso_bin"
        )
    return arr


def check_vector(x, n: int, name: str) -> np.ndarray:
    """Validate a finite float vector of length n."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ConformalInputError(f"{name} must have shape ({n},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConformalInputError(f"{name} has NaN or infinite values; drop those decisions")
    return arr


def check_groups(groups, n: int, name: str = "groups") -> np.ndarray:
    """Validate one group label per decision (strings or integers, no missing values)."""
    arr = np.asarray(groups)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ConformalInputError(f"{name} must have shape ({n},), got {arr.shape}")
    as_str = np.array([str(g) for g in arr], dtype=object)
    if any(s in ("nan", "None", "<NA>") for s in as_str):
        raise ConformalInputError(f"{name} has missing values; give every decision a group")
    return as_str


def min_calibration_size(alpha: float) -> int:
    """Smallest n with a finite split-conformal quantile: ceil((n + 1)(1 - alpha)) <= n.

    Equivalent to n >= 1/alpha - 1.

    Examples
    --------
    >>> min_calibration_size(0.1)
    9
    """
    alpha = check_alpha(alpha)
    return max(1, math.ceil((1.0 - alpha) / alpha - 1e-9))


def require_calibration_size(n: int, alpha: float, what: str = "calibration set") -> None:
    """Raise :class:`CalibrationTooSmallError` if ``n`` decisions cannot support ``alpha``."""
    need = min_calibration_size(alpha)
    if n < need:
        raise CalibrationTooSmallError(
            f"{what} has {n} decision(s) but alpha={alpha} needs at least {need} "
            f"(n >= 1/alpha - 1) for a finite conformal quantile; add calibration stays or "
            "raise alpha"
        )


def array_hash(*arrays) -> str:
    """SHA-256 (first 16 hex digits) of arrays' dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        arr = np.ascontiguousarray(np.asarray(a))
        if arr.dtype == object:
            arr = np.array([str(v) for v in arr.ravel()], dtype=str).reshape(arr.shape)
        h.update(str(arr.dtype).encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]
