"""Cohort table -> arrays for the SAFER model: one decision per row, a window of its history.

Row ``i`` of the output is the decision at (stay, step) of input row ``i``. Its window holds the
rows of the same stay with ``step <= step_i`` that are present in the frame (the last ``history``
of them, right-aligned, ``-1`` = padding). A note in the window is usable only if it is non-empty
and ``note_time <= charttime_i`` (the decision time): this guard does not rely on
:func:`safer.cohorts.schema.validate` having run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from safer.actions import N_ACTIONS
from safer.cohorts.schema import FEATURES, STATIC, numeric_matrix
from safer.errors import SaferError
from safer.models._common import as_datetime, as_float

# Only these columns are ever read; hidden ``true_*`` columns are not among them.
READ_COLUMNS = list(dict.fromkeys(["stay_id", "step", "charttime", *STATIC, *FEATURES, "action"]))
NOTE_READ_COLUMNS = ["note", "note_time"]
_NUMERIC = [*FEATURES, *STATIC]  # read as one float block


@dataclass
class Windows:
    """Per-row arrays plus each decision's window of row indices (sorted row order)."""

    order: np.ndarray  # (R,) sorted position -> input row
    window: np.ndarray  # (R, H) index into the row arrays, R = padding row
    features: np.ndarray  # (R, 47) raw clinical values, NaN = missing
    static: np.ndarray  # (R, 4)
    prev_action: np.ndarray  # (R,) previous present row's action in the stay, -1 = none
    step: np.ndarray  # (R,) the row's step (4 h each); 0 where not numeric
    notes: list[str]  # (R,)
    note_ok: np.ndarray  # (R, H) the window row's note may inform this decision
    action: np.ndarray  # (R,) this row's action (the label; -1 if absent or invalid)


class CohortColumnsError(SaferError, ValueError):
    """The frame given to a model lacks columns the model reads."""


def check_columns(df: pd.DataFrame, need_notes: bool) -> None:
    if not isinstance(df, pd.DataFrame):
        raise CohortColumnsError(f"expected a pandas DataFrame, got {type(df).__name__}")
    need = READ_COLUMNS + (NOTE_READ_COLUMNS if need_notes else [])
    present = set(df.columns.tolist())
    missing = [c for c in need if c not in present]
    if missing:
        raise CohortColumnsError(
            f"cohort is missing columns {missing}; see safer.cohorts.schema.REQUIRED_COLUMNS"
        )
    if len(df) == 0:
        raise CohortColumnsError("the cohort has no rows; pass at least one (stay, step) row")


def build_windows(df: pd.DataFrame, history: int, need_notes: bool) -> Windows:
    check_columns(df, need_notes)
    stay = df["stay_id"].to_numpy()
    step = as_float(df["step"])
    order = np.lexsort((step, stay))  # stable: by stay, then step
    stay_s = stay[order]
    n = len(df)
    new_stay = np.ones(n, dtype=bool)
    new_stay[1:] = stay_s[1:] != stay_s[:-1]
    start = np.maximum.accumulate(np.where(new_stay, np.arange(n), 0))
    pos = np.arange(n) - start  # rank of the row inside its stay (present rows only)

    offsets = np.arange(history - 1, -1, -1)  # (H,) oldest first
    window = np.arange(n)[:, None] - offsets[None, :]  # (R, H)
    window = np.where(offsets[None, :] <= pos[:, None], window, n)

    action = as_float(df["action"])[order]
    action = np.where(np.isfinite(action) & (action >= 0) & (action < N_ACTIONS), action, -1)
    action = action.astype(np.int64)
    prev_action = np.where(pos > 0, np.roll(action, 1), -1)

    # one selection of both blocks (present: checked above); selecting twice costs a one-stay
    # decision about a millisecond more
    numeric = numeric_matrix(df, _NUMERIC)[order]
    features = np.ascontiguousarray(numeric[:, : len(FEATURES)])
    static = np.ascontiguousarray(numeric[:, len(FEATURES) :])

    if need_notes:
        raw = df["note"].to_numpy(dtype=object)[order]
        notes = ["" if not isinstance(t, str) else t for t in raw]
        has_note = np.array([bool(t.strip()) for t in notes] + [False])
        note_time = as_datetime(df["note_time"])[order]
        chart = as_datetime(df["charttime"])[order]
        nt = np.append(note_time, np.array(["NaT"], dtype=note_time.dtype))[window]  # (R, H)
        with np.errstate(invalid="ignore"):
            in_time = ~pd.isna(nt) & (nt <= chart[:, None])
        note_ok = has_note[window] & in_time
    else:
        notes = [""] * n
        note_ok = np.zeros_like(window, dtype=bool)
    step_s = np.nan_to_num(step[order])
    return Windows(order, window, features, static, prev_action, step_s, notes, note_ok, action)
