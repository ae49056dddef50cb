"""Editing a stay's vitals in its cohort rows: the window an editor sees, and writing it back.

:func:`vitals_window` takes the last ``window`` steps of the editing model's channels (the
vitals :data:`safer.tsedit.VITALS`); :meth:`safer.tsedit.DiffusionEditor.edit` edits them under
anchors / segment statistics; :func:`apply_edit_to_history` writes the edited vitals back into
the rows, every other column (labs, derived scores such as ``Shock_Index``, doses given, notes)
staying as charted. :class:`safer.decisions.WhatIf` re-scores the decision with a recommender
and its gate; :func:`safer.store.stay_history` rebuilds a stored decision's rows.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rows = pd.DataFrame({"stay_id": 1, "step": [0, 1, 2], "HR": [90.0, np.nan, 110.0]})
>>> edited = pd.DataFrame({"HR": [95.0, 100.0]}, index=[1, 2])
>>> apply_edit_to_history(rows, edited)["HR"].tolist()
[90.0, 95.0, 100.0]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from safer.tsedit.data import VITALS, TseditDataError

__all__ = ["vitals_window", "apply_edit_to_history"]


def vitals_window(
    history: pd.DataFrame, window: int, channels: list[str] | None = None
) -> pd.DataFrame:
    """The last ``window`` steps of ``channels`` (default :data:`VITALS`), indexed by step.

    Examples
    --------
    >>> rows = pd.DataFrame({"step": [0, 1, 2], "HR": [90.0, 95.0, 110.0]})
    >>> vitals_window(rows, 2, ["HR"]).index.tolist()
    [1, 2]
    """
    channels = list(channels or VITALS)
    missing = [c for c in channels + ["step"] if c not in history.columns]
    if missing:
        raise TseditDataError(f"history is missing columns {missing}; see FEATURES")
    if window < 1:
        raise TseditDataError(f"window must be at least 1 step, got {window}")
    rows = history.sort_values("step").tail(window)
    return rows.set_index("step")[channels].astype(float)


def apply_edit_to_history(history: pd.DataFrame, edited_vitals: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``history`` whose vitals are replaced by ``edited_vitals`` where given.

    Parameters
    ----------
    history : pandas.DataFrame
        Cohort rows of one stay (any order), with a ``step`` column.
    edited_vitals : pandas.DataFrame
        Indexed by step (as :func:`vitals_window` returns), one column per edited channel.
        Every (step, channel) it holds replaces the charted value, including values that were
        missing (the edit's imputation is what the what-if trajectory shows). Steps outside it
        and all other columns are kept as charted.

    Returns
    -------
    pandas.DataFrame
        Same rows, columns and order as ``history``.

    Examples
    --------
    >>> rows = pd.DataFrame({"step": [0, 1], "HR": [90.0, 95.0], "SOFA": [4.0, 5.0]})
    >>> out = apply_edit_to_history(rows, pd.DataFrame({"HR": [120.0]}, index=[1]))
    >>> out[["HR", "SOFA"]].values.tolist()
    [[90.0, 4.0], [120.0, 5.0]]
    """
    unknown = [c for c in edited_vitals.columns if c not in history.columns]
    if unknown:
        raise TseditDataError(f"edited channels {unknown} are not columns of the history")
    steps = set(history["step"].tolist())
    outside = [s for s in edited_vitals.index if s not in steps]
    if outside:
        raise TseditDataError(
            f"edited steps {outside} are not in the history (steps {sorted(steps)})"
        )
    out = history.copy()
    pos = pd.Series(np.arange(len(out)), index=out["step"].to_numpy())
    rows = pos.loc[edited_vitals.index].to_numpy()
    for c in edited_vitals.columns:
        col = out.columns.get_loc(c)
        values = out.iloc[:, col].to_numpy(dtype=float, copy=True)
        values[rows] = edited_vitals[c].to_numpy(dtype=float)
        out.iloc[:, col] = values
    return out
