"""What-if editing of a stored decision: edit a stay's vitals, re-score the recommendation.

The console's what-if page is a thin view over these functions:

1. :func:`stay_history` rebuilds a stay's cohort rows up to one stored decision from the store
   (the same rows :func:`safer.store.decision_detail` shows, with all 47 features and the notes
   charted up to that step), checking the user's role as every store read does.
2. :func:`vitals_window` takes the last ``window`` steps of the editing model's channels (the
   vitals :data:`safer.tsedit.VITALS`).
3. :meth:`safer.tsedit.DiffusionEditor.edit` edits them under anchors / segment statistics.
4. :func:`apply_edit_to_history` writes the edited vitals back into the rows; every other
   column (labs, derived scores such as ``Shock_Index``, doses given, notes) stays as charted.
5. :func:`score_decision` re-scores the decision (the last row) with a fitted recommender and,
   optionally, a conformal gate: recommended dose, prediction set and probabilities.

Nothing here trains or calibrates, and nothing writes to the store.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rows = pd.DataFrame({"stay_id": 1, "step": [0, 1, 2], "HR": [90.0, np.nan, 110.0]})
>>> edited = pd.DataFrame({"HR": [95.0, 100.0]}, index=[1, 2])
>>> apply_edit_to_history(rows, edited)["HR"].tolist()
[90.0, 95.0, 100.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from safer.actions import describe_action
from safer.cohorts.schema import FEATURES
from safer.tsedit.data import VITALS, TseditDataError

__all__ = ["stay_history", "vitals_window", "apply_edit_to_history", "score_decision"]


def stay_history(session: Any, user: Any, rec_id: int) -> pd.DataFrame:
    """Cohort rows of a stored decision's stay, steps ``0..step`` of that decision.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        A session on the SAFER store.
    user : safer.store.SignedInUser
        The signed-in user; needs the ``view_queue`` permission.
    rec_id : int
        The stored recommendation (one decision) to rebuild.

    Returns
    -------
    pandas.DataFrame
        One row per step, sorted by step, with the cohort columns a recommender reads (keys,
        static, the 47 features, ``action``/``fluid_bin``/``vaso_bin``, ``note``/``note_time``,
        ``died``). The last row is the decision; its ``action`` is the one charted, which a
        recommender never reads for the row it scores. Notes come only from steps up to the
        decision and only if charted at or before its time.

    Examples
    --------
    >>> # with Session() as s:
    >>> #     rows = stay_history(s, user, rec_id=12)
    """
    import sqlalchemy as sa

    from safer.store import StoreError, require
    from safer.store.schema import Note, Recommendation, Stay, Step

    require(user, "view_queue")
    rec = session.get(Recommendation, int(rec_id))
    if rec is None:
        raise StoreError(f"no recommendation {rec_id}; pick one from the review queue")
    stay = session.get(Stay, rec.stay_id)
    steps = list(
        session.execute(
            sa.select(Step)
            .where(Step.stay_id == rec.stay_id, Step.step <= rec.step)
            .order_by(Step.step)
        ).scalars()
    )
    if not steps:
        raise StoreError(f"stay {rec.stay_id} has no stored steps; reload it with `safer db load`")
    decision_time = steps[-1].charttime
    notes = {
        n.step: n
        for n in session.execute(
            sa.select(Note).where(
                Note.stay_id == rec.stay_id,
                Note.step <= rec.step,
                Note.note_time <= decision_time,
            )
        ).scalars()
    }
    rows = []
    for s in steps:
        note = notes.get(s.step)
        row = {f: np.nan if s.features.get(f) is None else s.features[f] for f in FEATURES}
        row.update(
            stay_id=s.stay_id,
            step=s.step,
            charttime=pd.Timestamp(s.charttime),
            weight_kg=stay.weight_kg if stay.weight_kg is not None else row["Weight_kg"],
            action=s.action,
            fluid_bin=s.action // 5,
            vaso_bin=s.action % 5,
            fluid_ml=s.fluid_ml,
            vaso_ugkgmin=s.vaso_ugkgmin,
            note="" if note is None else note.text,
            note_time=pd.NaT if note is None else pd.Timestamp(note.note_time),
            died=int(stay.died or 0),
        )
        rows.append(row)
    return pd.DataFrame(rows)


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


def score_decision(model: Any, history: pd.DataFrame, gate: Any = None) -> dict[str, Any]:
    """Score the decision at the last step of ``history`` with a fitted recommender (and gate).

    Parameters
    ----------
    model
        A fitted recommender with ``predict_proba(cohort)`` (and ``embed`` and
        ``content_hash_`` when a gate is given), e.g. ``safer.models.load_model(dir)``.
    history : pandas.DataFrame
        Cohort rows of one stay up to the decision.
    gate : safer.conformal.Gate, optional
        Without it there is no prediction set and the recommendation is the most likely dose.
        With it the gate's model hash is checked against the model's.

    Returns
    -------
    dict
        ``action`` (-1 = abstain), ``top_action``, ``recommended`` (a dose in clinical units or
        "abstain"), ``probabilities`` (25 floats), ``prediction_set`` (action ids or None),
        ``prediction_set_doses`` and ``reason``.

    Examples
    --------
    >>> # score_decision(load_model("runs/safer"), rows, load_gate("gate.json"))["recommended"]
    """
    rows = history.sort_values("step").reset_index(drop=True)
    proba = np.asarray(model.predict_proba(rows), dtype=float)[-1:]
    top = int(proba[0].argmax())
    if gate is None:
        action, pset, reason = top, None, "no conformal gate: the most likely dose"
    else:
        embedding = model.embed(rows)[-1:] if gate.method == "selection" else None
        d = gate.decide(proba, embedding=embedding, model_hash=model.content_hash_)
        action, reason = int(d.action[0]), str(d.reason[0])
        pset = np.flatnonzero(d.sets[0]).tolist()
    return {
        "action": action,
        "top_action": top,
        "recommended": "abstain" if action < 0 else describe_action(action),
        "probabilities": proba[0].tolist(),
        "prediction_set": pset,
        "prediction_set_doses": [describe_action(a) for a in pset or []],
        "reason": reason,
    }
