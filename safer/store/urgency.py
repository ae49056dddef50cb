"""Urgency: the queue's documented points score, computed once when a decision is stored.

A decision's urgency has two parts:

- the **clinical part** (:func:`clinical_urgency`), from the last measured values at or before
  the decision (sparse labs carried forward at most :data:`LOOKBACK` blocks, 8 h): SOFA now,
  MAP below 65 (+1 per 2.5 mmHg), lactate above 2 (+2 per mmol/L), lactate rising by more than
  0.3 (+2), SOFA rising (+1 per point). It depends only on the stay's stored steps, which never
  change (corrected data is a new stay version with its own decisions), so
  :func:`safer.store.add_decisions` computes it once and stores it in the recommendation's
  ``urgency`` and ``urgency_why`` columns (migration 0004 backfilled older rows);
- the **waiting part** (:func:`waiting_points`): +1 per 2 h a pending decision has waited, at
  most +4. It grows with the clock, so it is added when the queue is read — in SQL
  (:func:`waiting_points_sql`), which lets the queue rank in the database (``ORDER BY ...
  LIMIT``) instead of scoring every patient in Python on every call.

:func:`urgency` is the whole score (both parts, the same arithmetic in the same order). It orders
the queue; it is not a validated severity score, and the queue says *why* each patient is ranked
where it is. The points echo the bedside triggers of the Surviving Sepsis Campaign guidelines
(Evans et al., *Crit Care Med* 2021: MAP target 65 mmHg, lactate above 2 mmol/L) and the SOFA
score (Vincent et al., *Intensive Care Med* 1996).

Examples
--------
>>> score, why = urgency([{"SOFA": 8, "MeanBP": 70, "Arterial_lactate": 2.0},
...                       {"SOFA": 10, "MeanBP": 60, "Arterial_lactate": 3.5}])
>>> round(score, 1), why
(19.0, ['SOFA 10 (+2)', 'MAP 60', 'lactate 3.5 rising'])
>>> waiting_points(3.0), waiting_points(30.0)
(1.5, 4.0)
"""

from __future__ import annotations

import math
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from safer.store.schema import Step

__all__ = [
    "LOOKBACK",
    "MAX_WAITING_POINTS",
    "clinical_urgency",
    "last_measured",
    "urgency",
    "waiting_points",
    "waiting_points_sql",
    "waiting_reason",
    "stored_urgency",
    "windows",
]

LOOKBACK = 2  # blocks a sparse measurement is carried forward (2 x 4 h)
HOURS_PER_POINT = 2.0  # waiting: +1 point per 2 h ...
MAX_WAITING_POINTS = 4.0  # ... at most +4
_CHUNK = 900  # stays per query


def last_measured(values: list[float | None]) -> float | None:
    """The newest measured value (``values`` oldest first), or None."""
    for v in reversed(values):
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            return float(v)
    return None


def clinical_urgency(window: list[dict[str, float | None]]) -> tuple[float, list[str]]:
    """Points and reasons in words from the features of the last blocks (no waiting time).

    ``window`` holds the feature dicts of the steps up to the decision, oldest first (the last
    is the decision's own block, measured before the decision): what :func:`windows` reads.
    """
    if not window:
        return 0.0, []
    now, before = window[-1], window[:-1]
    score, why = 0.0, []
    sofa = last_measured([w.get("SOFA") for w in window])
    sofa_prev = last_measured([w.get("SOFA") for w in before])
    if sofa is not None:
        score += sofa
        rise = 0.0 if sofa_prev is None else sofa - sofa_prev
        if rise > 0:
            score += rise
            why.append(f"SOFA {sofa:.0f} (+{rise:.0f})")
        elif sofa >= 8:
            why.append(f"SOFA {sofa:.0f}")
    map_ = last_measured([now.get("MeanBP")])
    if map_ is not None and map_ < 65:
        score += (65 - map_) / 2.5
        why.append(f"MAP {map_:.0f}")
    lac = last_measured([w.get("Arterial_lactate") for w in window])
    lac_prev = last_measured([w.get("Arterial_lactate") for w in before])
    if lac is not None:
        rising = lac_prev is not None and lac > lac_prev + 0.3
        if lac > 2:
            score += 2 * (lac - 2)
        if rising:
            score += 2
        if lac > 2 or rising:
            why.append(f"lactate {lac:.1f}" + (" rising" if rising else ""))
    return score, why


def waiting_points(waiting_hours: float) -> float:
    """Points for time waiting in the queue: +1 per 2 h, at most +4 (0 for no or negative time)."""
    if waiting_hours > 0:
        return min(waiting_hours / HOURS_PER_POINT, MAX_WAITING_POINTS)
    return 0.0


def waiting_reason(waiting_hours: float) -> list[str]:
    """The words :func:`urgency` adds for the waiting time (from 2 h on)."""
    return [f"waiting {waiting_hours:.0f} h"] if waiting_hours >= HOURS_PER_POINT else []


def urgency(
    window: list[dict[str, float | None]], waiting_hours: float = 0.0
) -> tuple[float, list[str]]:
    """Points score and its reasons in words: :func:`clinical_urgency` plus
    :func:`waiting_points` (SOFA now; MAP below 65, +1 per 2.5 mmHg; lactate above 2, +2 per
    mmol/L; lactate rising by more than 0.3, +2; SOFA rising, +1 per point; waiting, +1 per
    2 h, at most +4).

    >>> urgency([{"SOFA": 4}], waiting_hours=5)
    (6.5, ['waiting 5 h'])
    """
    score, why = clinical_urgency(window)
    if not window:
        return score, why
    return score + waiting_points(waiting_hours), why + waiting_reason(waiting_hours)


def _window_steps(keys) -> list[tuple[int, int]]:
    """The (stay, step) keys of the steps in the windows of ``keys``, sorted."""
    return sorted(
        {(sid, s) for sid, step in keys for s in range(max(step - LOOKBACK, 0), step + 1)}
    )


def _features(session_or_connection, wanted: list[tuple[int, int]]) -> dict[tuple, dict]:
    """Feature dicts of the ``wanted`` (stay, step) keys that exist.

    Read by stay (``stay_id IN (...)``, the steps' stay index, in chunks of stays that keep the
    statement's parameters well under SQLite's and PostgreSQL's limits) within the chunk's step
    range, then kept to the wanted keys: a row-value ``(stay_id, step) IN (...)`` list is not
    an index lookup on SQLite (it scanned every step of the table).
    """
    need = set(wanted)
    by_stay: dict[int, list[int]] = {}
    for sid, step in wanted:
        by_stay.setdefault(sid, []).append(step)
    stays = sorted(by_stay)
    out: dict[tuple[int, int], dict] = {}
    for i in range(0, len(stays), _CHUNK):
        chunk = stays[i : i + _CHUNK]
        lo = min(min(by_stay[s]) for s in chunk)
        hi = max(max(by_stay[s]) for s in chunk)
        q = sa.select(Step.stay_id, Step.step, Step.features).where(
            Step.stay_id.in_(chunk), Step.step.between(lo, hi)
        )
        for sid, step, feats in session_or_connection.execute(q):
            if (sid, step) in need:
                out[(sid, step)] = feats
    return out


def _window(feats: dict[tuple, dict], sid: int, step: int) -> list[dict]:
    return [feats[(sid, s)] for s in range(max(step - LOOKBACK, 0), step + 1) if (sid, s) in feats]


def windows(session_or_connection, keys: list[tuple[int, int]]) -> dict[int, list[dict]]:
    """Feature dicts of steps ``step - LOOKBACK .. step`` of each (stay key, step), oldest first,
    keyed by stay (one key per stay).

    Only those stays' steps in the keys' step range are read (:func:`_features`). Works on an
    ORM session or a Core connection.
    """
    feats = _features(session_or_connection, _window_steps(keys))
    return {sid: w for sid, step in keys if (w := _window(feats, sid, step))}


def stored_urgency(
    session_or_connection, keys: list[tuple[int, int]], chunk: int = 5000
) -> list[tuple[float, list[str]]]:
    """:func:`clinical_urgency` of each (stay key, step) in ``keys``, in order: what a
    recommendation stores in ``urgency`` / ``urgency_why``. Each step is read once per chunk of
    ``chunk`` keys (memory stays bounded on a large load); a step's window is the steps
    ``step - LOOKBACK .. step`` that exist."""
    out: list[tuple[float, list[str]]] = []
    for i in range(0, len(keys), chunk):
        part = keys[i : i + chunk]
        feats = _features(session_or_connection, _window_steps(part))
        out += [clinical_urgency(_window(feats, sid, step)) for sid, step in part]
    return out


class _HoursSince(FunctionElement):
    """Hours from the first argument (a timestamp column) to the second (a bound time)."""

    type = sa.Float()
    name = "hours_since"
    inherit_cache = True


@compiles(_HoursSince)
def _hours_since_default(element, compiler, **kw):  # PostgreSQL and other engines
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"(EXTRACT(EPOCH FROM ({end} - {start})) / 3600.0)"


@compiles(_HoursSince, "sqlite")
def _hours_since_sqlite(element, compiler, **kw):  # julianday keeps milliseconds
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 24.0)"


def waiting_points_sql(created_at: ColumnElement, now: datetime) -> ColumnElement:
    """:func:`waiting_points` as an SQL expression of a timestamp column at time ``now``."""
    hours = _HoursSince(created_at, sa.literal(now, sa.DateTime()))
    cap = MAX_WAITING_POINTS * HOURS_PER_POINT
    return sa.case(
        (hours <= 0, sa.literal(0.0)),
        (hours >= cap, sa.literal(MAX_WAITING_POINTS)),
        else_=hours / HOURS_PER_POINT,
    )
