"""What a gate that decodes patient states reads of each decision: its representation.

The kinds, named in :data:`REPRESENTATIONS` and recorded in the gate (``gate.representation``)
so the decisions stage computes the same one when it decides:

``features``
    The 47 charted features of the decision's row, the skewed ones (labs and fluid volumes the
    AI Clinician log-transforms) as ``log(0.1 + x)`` -- the AI Clinician's state recipe
    (Komorowski et al., Nature Medicine 2018). EHR only.
``features+notes``
    The same, with the quantities the row's note states (:mod:`safer.models.note_quantities`)
    put in place of the charted value, plus the note-only quantities (the plan's pressor and
    fluid intent, code status, the lactate trend). A note counts only if charted before the
    decision (``note_time <= charttime``). EHR and notes.
``features+readings``
    The 47 features beside the note's readings of the same quantities as their own columns
    (``note:MeanBP``, ...; skewed ones logged alike) and the lactate trend, instead of put in
    place of the charted value; the plan's intent and code status are left out. A decoder
    then weighs each source by its own spread within a state. EHR and notes.
``features+locf`` and ``features+notes+locf``
    The same two, with each value missing at the decision carried forward from the stay's last
    row at or before it that has one (last observation carried forward; labs and blood gases
    are charted on about half the rows). Only the stay's earlier rows are read, never a later
    one, nor an action; a value never charted before stays missing (k-means counts it as the
    training mean; the mixture decoder leaves it out). These read the stay's history, so a
    decision needs its stay's earlier rows (the decisions stage and the rollouts pass them).
    Measured on the simulator
    (``docs/benchmarks/safe_gate_options.md``).
``embedding``
    The model's own fused representation (``model.embed(rows)``; SAFER fuses the structured
    history and the notes).

The feature kinds are DataFrames (their column names let a gate describe a state in clinical
words); the embedding is an array. None of them reads a ``true_*`` column.

Examples
--------
>>> from safer.cohorts import simulate_cohort
>>> rows = simulate_cohort(n_stays=3, seed=0, progress=False)
>>> rep = representation("features+notes", None, rows)
>>> rep.shape == (len(rows), 47 + 4), "log(BUN)" in rep.columns
(True, True)
>>> carried = representation("features+locf", None, rows)
>>> plain = representation("features", None, rows)
>>> int(carried.isna().sum().sum()) <= int(plain.isna().sum().sum())
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from safer._registry import Registry
from safer.cohorts.schema import FEATURES, numeric_matrix
from safer.errors import SaferError
from safer.models._common import as_datetime
from safer.models.note_quantities import (
    fuse_with_features,
    note_readings,
    parse_note_quantities,
)

__all__ = ["REPRESENTATIONS", "ROW_WISE", "LOG_FEATURES", "carry_forward", "representation"]

#: Features the AI Clinician log-transforms before clustering (skewed labs and volumes).
LOG_FEATURES = (
    "SpO2", "BUN", "Creatinine", "SGOT", "SGPT", "Total_bili", "INR", "input_total",
    "input_4hourly", "output_total", "output_4hourly",
)  # fmt: skip


def _logged(names: list[str]) -> tuple[list[int], pd.Index]:
    """Positions of the skewed features among ``names``, and the columns with those logged."""
    where = [names.index(f) for f in LOG_FEATURES if f in names]
    out = list(names)
    for j in where:
        out[j] = f"log({names[j]})"
    return where, pd.Index(out)


#: The ``features`` columns, built once: an index of 47 names costs a one-row frame more than
#: the rest of it.
_FEATURE_COLUMNS = _logged(list(FEATURES))


def _frame(values: np.ndarray, names: list[str], index, logged=None) -> pd.DataFrame:
    """``values`` as a frame, the skewed features logged (``logged``: :func:`_logged` of
    ``names`` when already known)."""
    where, out_names = logged or _logged(names)
    values = values.copy()
    values[:, where] = np.log(0.1 + np.maximum(values[:, where], 0.0))
    return pd.DataFrame(values, columns=out_names, index=index)


def _need(rows: pd.DataFrame, columns) -> None:
    present = set(rows.columns.tolist())
    missing = [c for c in columns if c not in present]
    if missing:
        raise SaferError(f"the representation needs cohort columns {missing}")


def _features(model: Any, rows: pd.DataFrame) -> pd.DataFrame:
    _need(rows, FEATURES)
    return _frame(numeric_matrix(rows, FEATURES), FEATURES, rows.index, _FEATURE_COLUMNS)


def _note_quantities(rows: pd.DataFrame) -> np.ndarray:
    """The quantities each row's note states, a note counting only if charted before the
    decision (``note_time <= charttime``; a later note reads as no note)."""
    _need(rows, [*FEATURES, "note", "note_time", "charttime"])
    notes = rows["note"].to_numpy(dtype=object)
    usable = as_datetime(rows["note_time"]) <= as_datetime(rows["charttime"])
    texts = [n if ok and isinstance(n, str) else "" for n, ok in zip(notes, usable, strict=True)]
    return parse_note_quantities(texts)


def _features_readings(model: Any, rows: pd.DataFrame) -> pd.DataFrame:
    readings, names = note_readings(_note_quantities(rows), FEATURES)
    charted = _features(model, rows)
    # a reading of a skewed quantity is logged like the charted value it stands beside
    notes = _frame(readings, [n.removeprefix("note:") for n in names], rows.index)
    notes.columns = [f"note:{c}" if n.startswith("note:") else n
                     for c, n in zip(notes.columns, names, strict=True)]  # fmt: skip
    return pd.concat([charted, notes], axis=1)


def _features_notes(model: Any, rows: pd.DataFrame) -> pd.DataFrame:
    fused, names = fuse_with_features(
        numeric_matrix(rows, FEATURES), FEATURES, _note_quantities(rows)
    )
    return _frame(fused, names, rows.index)


def carry_forward(rows: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (one row per row of ``rows``, same order) with each missing value replaced by
    the last non-missing value of its column in an earlier row of the same stay (by ``step``).

    Only rows at or before a row's step are read (last observation carried forward); the order
    of ``rows`` is kept.

    >>> rows = pd.DataFrame({"stay_id": [1, 1, 2, 1], "step": [2, 0, 0, 1]})
    >>> x = pd.DataFrame({"lactate": [np.nan, 4.0, np.nan, np.nan]})
    >>> carry_forward(rows, x)["lactate"].tolist()
    [4.0, 4.0, nan, 4.0]
    """
    _need(rows, ["stay_id", "step"])
    if len(frame) != len(rows):
        raise SaferError(f"carry_forward: {len(frame)} values for {len(rows)} rows")
    stay, step = rows["stay_id"].to_numpy(), rows["step"].to_numpy()
    order = np.lexsort((step, stay))
    ordered = frame.iloc[order].reset_index(drop=True)
    filled = ordered.groupby(stay[order], sort=False).ffill()
    out = np.empty_like(filled.to_numpy(dtype=float))
    out[order] = filled.to_numpy(dtype=float)
    return pd.DataFrame(out, columns=frame.columns, index=frame.index)


def _features_locf(model: Any, rows: pd.DataFrame) -> pd.DataFrame:
    return carry_forward(rows, _features(model, rows))


def _features_notes_locf(model: Any, rows: pd.DataFrame) -> pd.DataFrame:
    return carry_forward(rows, _features_notes(model, rows))


def _embedding(model: Any, rows: pd.DataFrame) -> np.ndarray:
    if model is None or not hasattr(model, "embed"):
        raise SaferError("the 'embedding' representation needs a model with embed(rows)")
    return np.asarray(model.embed(rows), dtype=float)


#: Representation kind -> function(model, rows) -> (n_rows, d) DataFrame or array.
REPRESENTATIONS: Registry[Callable[[Any, pd.DataFrame], Any]] = Registry(
    "representation",
    {
        "features": _features,
        "features+notes": _features_notes,
        "features+readings": _features_readings,
        "features+locf": _features_locf,
        "features+notes+locf": _features_notes_locf,
        "embedding": _embedding,
    },
)


#: Kinds that read each row alone (no history), so a row's value needs only that row.
ROW_WISE = frozenset({"features", "features+notes", "features+readings"})


def representation(kind: str | None, model: Any, rows: pd.DataFrame, current=None):
    """The ``kind`` representation of the rows of ``rows`` (None = the model's embedding).

    ``current`` (bool per row, optional) keeps only those rows; the others are the stays'
    history, read by the embedding of a model over history windows.

    >>> import pandas as pd
    >>> from safer.cohorts import simulate_cohort
    >>> rows = simulate_cohort(n_stays=2, seed=0, progress=False)
    >>> last = (rows["step"] == rows.groupby("stay_id")["step"].transform("max")).to_numpy()
    >>> representation("features", None, rows, current=last).shape[0]
    2
    """
    kind = kind or "embedding"
    compute = REPRESENTATIONS[kind]
    if current is None:
        return compute(model, rows)
    current = np.asarray(current, dtype=bool)
    if kind in ROW_WISE:
        return compute(model, rows[current])
    return np.asarray(compute(model, rows))[current]
