"""The 5 x 5 action grid: IV fluid bin x vasopressor bin.

``action = 5 * fluid_bin + vaso_bin`` (the AI Clinician / ICU-Sepsis convention). Bin 0 is "none";
bins 1-4 are the quartiles of the non-zero 4-hourly dose in the MIMIC-III sepsis cohort.

Bin edges are those published with the AI Clinician (Komorowski et al., "The Artificial
Intelligence Clinician learns optimal treatment strategies for sepsis in intensive care",
Nature Medicine 24, 1716-1720, 2018; dose-bin legend of the action-space figure), on which the
ICU-Sepsis MDP (Choudhary et al., 2024) is built:

=====  ========================  ==========================================
bin    IV fluid (mL / 4 h)       vasopressor (ug/kg/min norepinephrine-eq.)
=====  ========================  ==========================================
0      0                         0
1      (0, 50]                   (0, 0.08]
2      (50, 180]                 (0.08, 0.22]
3      (180, 530]                (0.22, 0.45]
4      > 530                     > 0.45
=====  ========================  ==========================================

The top bins are open-ended; :data:`FLUID_BINS` and :data:`VASO_BINS` carry a nominal upper
bound (2,000 mL / 4 h and 1.5 ug/kg/min) used only to sample doses in the simulator and to draw
plots, flagged by ``open_ended=True``.

Examples
--------
>>> from safer.actions import action_id, split_action, describe_action
>>> action_id(fluid_bin=2, vaso_bin=1)
11
>>> split_action(11)
(2, 1)
>>> describe_action(11)
'IV fluid 50-180 mL/4h, vasopressor 0-0.08 ug/kg/min'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from safer.errors import SaferError

__all__ = [
    "N_LEVELS",
    "N_ACTIONS",
    "DoseBin",
    "FLUID_BINS",
    "VASO_BINS",
    "action_id",
    "split_action",
    "describe_action",
    "action_label",
    "bin_of_dose",
]

N_LEVELS = 5
N_ACTIONS = N_LEVELS * N_LEVELS


@dataclass(frozen=True)
class DoseBin:
    """One dose bin: ``low < dose <= high`` (bin 0 is exactly zero)."""

    index: int
    low: float
    high: float
    unit: str
    open_ended: bool = False

    def label(self) -> str:
        """Human-readable range, e.g. ``'50-180 mL/4h'`` or ``'> 530 mL/4h'``."""
        if self.index == 0:
            return f"none (0 {self.unit})"
        if self.open_ended:
            return f"> {_fmt(self.low)} {self.unit}"
        return f"{_fmt(self.low)}-{_fmt(self.high)} {self.unit}"


def _fmt(x: float) -> str:
    return f"{x:g}"


_FLUID_UNIT = "mL/4h"
_VASO_UNIT = "ug/kg/min"

FLUID_BINS: tuple[DoseBin, ...] = (
    DoseBin(0, 0.0, 0.0, _FLUID_UNIT),
    DoseBin(1, 0.0, 50.0, _FLUID_UNIT),
    DoseBin(2, 50.0, 180.0, _FLUID_UNIT),
    DoseBin(3, 180.0, 530.0, _FLUID_UNIT),
    DoseBin(4, 530.0, 2000.0, _FLUID_UNIT, open_ended=True),
)
VASO_BINS: tuple[DoseBin, ...] = (
    DoseBin(0, 0.0, 0.0, _VASO_UNIT),
    DoseBin(1, 0.0, 0.08, _VASO_UNIT),
    DoseBin(2, 0.08, 0.22, _VASO_UNIT),
    DoseBin(3, 0.22, 0.45, _VASO_UNIT),
    DoseBin(4, 0.45, 1.5, _VASO_UNIT, open_ended=True),
)


def _check_bin(value, name: str) -> None:
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.integer) or np.any((arr < 0) | (arr >= N_LEVELS)):
        raise SaferError(f"{name} must be an integer in 0..{N_LEVELS - 1}, got {value!r}")


def _check_action(action) -> None:
    arr = np.asarray(action)
    if not np.issubdtype(arr.dtype, np.integer) or np.any((arr < 0) | (arr >= N_ACTIONS)):
        raise SaferError(f"action must be an integer in 0..{N_ACTIONS - 1}, got {action!r}")


def action_id(fluid_bin, vaso_bin):
    """Action index ``5 * fluid_bin + vaso_bin``; works on ints and integer arrays."""
    _check_bin(fluid_bin, "fluid_bin")
    _check_bin(vaso_bin, "vaso_bin")
    return (
        N_LEVELS * np.asarray(fluid_bin) + np.asarray(vaso_bin)
        if np.ndim(fluid_bin)
        else (N_LEVELS * int(fluid_bin) + int(vaso_bin))
    )


def split_action(action):
    """``(fluid_bin, vaso_bin)`` of an action index (ints or integer arrays)."""
    _check_action(action)
    if np.ndim(action):
        a = np.asarray(action)
        return a // N_LEVELS, a % N_LEVELS
    return int(action) // N_LEVELS, int(action) % N_LEVELS


def describe_action(action: int) -> str:
    """The dose an action stands for, in clinical units."""
    fluid, vaso = split_action(int(action))
    return f"IV fluid {_bare(FLUID_BINS[fluid])}, vasopressor {_bare(VASO_BINS[vaso])}"


def _bare(b: DoseBin) -> str:
    if b.index == 0:
        return "none"
    return b.label()


def action_label(action: int) -> str:
    """Short label for tables and plots, e.g. ``'F2/V1'``."""
    fluid, vaso = split_action(int(action))
    return f"F{fluid}/V{vaso}"


def bin_of_dose(dose, bins: tuple[DoseBin, ...]) -> np.ndarray:
    """Bin index of each dose (0 for exactly zero, then the ``(low, high]`` ranges).

    Negative or non-finite doses are an error: they are not doses.
    """
    d = np.asarray(dose, dtype=float)
    if np.any(~np.isfinite(d)) or np.any(d < 0):
        raise SaferError("doses must be finite and non-negative")
    edges = np.array([b.high for b in bins[1:-1]])  # upper edges of bins 1..3
    out = np.where(d <= 0, 0, 1 + np.searchsorted(edges, d, side="left"))
    return out.astype(np.int64)
