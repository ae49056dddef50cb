"""The clinician's queue: one row per patient (the current decision), most urgent first.

A stay's *current decision* is its newest stored recommendation (latest step; the newest row
when several models or gates decided the same step) on the stay's current data version. Older
pending decisions of the same patient are not offered (the patient has moved on) but are counted,
so the counts are honest: ``patients`` (with a current decision in the chosen status),
``pending_decisions`` (every pending row, current or not) and ``older_pending`` (pending rows
behind a newer decision of the same patient).

Urgency (:func:`urgency`) is a documented points score from the last measured values at or
before the decision (sparse labs are carried forward at most two blocks, 8 h): SOFA, MAP below
65, lactate above 2 and rising, SOFA rising, and time waiting in the queue. It orders the queue;
it is not a validated severity score, and the queue shows *why* each patient is ranked where it
is.

Examples
--------
>>> # with Session() as s:
>>> #     page = patient_queue(s, user, page=1, page_size=20)
>>> #     page.rows[0]["recommendation"], page.patients, page.pages
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from safer.review.doses import reason_in_words, recommendation_text
from safer.store.db import read_only
from safer.store.errors import StoreError
from safer.store.schema import Gate, Recommendation, Stay, Step, utcnow
from safer.store.users import SignedInUser, require

__all__ = ["QueuePage", "urgency", "patient_queue", "next_patient", "QUEUE_STATUSES"]

QUEUE_STATUSES = ("pending", "reviewed", "all")
_LOOKBACK = 2  # blocks a sparse measurement is carried forward (2 x 4 h)
_CHUNK = 900  # (stay, step) keys per query: 1,800 parameters


@dataclass
class QueuePage:
    """One page of the patient queue and the honest counts around it."""

    rows: list[dict[str, Any]]
    patients: int  # patients whose current decision matches the filters
    page: int
    pages: int
    page_size: int
    pending_decisions: int  # every pending decision on current data (current or older)
    older_pending: int  # pending decisions behind a patient's current one (earlier steps,
    # or another model's / gate's decision of the same step)
    flagged: int  # of ``patients``: current decisions the gate did not back with one dose
    filters: dict[str, Any] = field(default_factory=dict)


def _last(values: list[float | None]) -> float | None:
    """The newest measured value (``values`` oldest first), or None."""
    for v in reversed(values):
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            return float(v)
    return None


def urgency(
    window: list[dict[str, float | None]], waiting_hours: float = 0.0
) -> tuple[float, list[str]]:
    """Points score and its reasons in words from the features of the last blocks.

    ``window`` holds the feature dicts of the steps up to the decision, oldest first (the last
    is the decision's own block, measured before the decision). Points: SOFA now; MAP below 65
    (+1 per 2.5 mmHg); lactate above 2 (+2 per mmol/L); lactate rising by more than 0.3 (+2);
    SOFA rising (+1 per point); waiting (+1 per 2 h, at most +4).

    >>> score, why = urgency([{"SOFA": 8, "MeanBP": 70, "Arterial_lactate": 2.0},
    ...                       {"SOFA": 10, "MeanBP": 60, "Arterial_lactate": 3.5}])
    >>> round(score, 1), why
    (19.0, ['SOFA 10 (+2)', 'MAP 60', 'lactate 3.5 rising'])
    """
    if not window:
        return 0.0, []
    now, before = window[-1], window[:-1]
    score, why = 0.0, []
    sofa = _last([w.get("SOFA") for w in window])
    sofa_prev = _last([w.get("SOFA") for w in before])
    if sofa is not None:
        score += sofa
        rise = 0.0 if sofa_prev is None else sofa - sofa_prev
        if rise > 0:
            score += rise
            why.append(f"SOFA {sofa:.0f} (+{rise:.0f})")
        elif sofa >= 8:
            why.append(f"SOFA {sofa:.0f}")
    map_ = _last([now.get("MeanBP")])
    if map_ is not None and map_ < 65:
        score += (65 - map_) / 2.5
        why.append(f"MAP {map_:.0f}")
    lac = _last([w.get("Arterial_lactate") for w in window])
    lac_prev = _last([w.get("Arterial_lactate") for w in before])
    if lac is not None:
        rising = lac_prev is not None and lac > lac_prev + 0.3
        if lac > 2:
            score += 2 * (lac - 2)
        if rising:
            score += 2
        if lac > 2 or rising:
            why.append(f"lactate {lac:.1f}" + (" rising" if rising else ""))
    if waiting_hours > 0:
        score += min(waiting_hours / 2, 4.0)
        if waiting_hours >= 2:
            why.append(f"waiting {waiting_hours:.0f} h")
    return score, why


def _current(session: Session, stay_id: int | None):
    """Per current stay version: its newest recommendation and the pending count behind it."""
    R = Recommendation
    q = (
        sa.select(R.id, R.stay_id, R.step, R.status, R.flagged)
        .join(Stay, Stay.stay_id == R.stay_id)
        .where(Stay.superseded_at.is_(None))
    )
    if stay_id is not None:
        q = q.where(Stay.source_stay_id == int(stay_id))
    newest: dict[int, tuple[int, int, str, bool]] = {}
    pending = 0
    for rid, sid, step, status, flagged in session.execute(q):
        pending += status == "pending"
        if sid not in newest or (step, rid) > newest[sid][:2]:
            newest[sid] = (step, rid, status, bool(flagged))
    return newest, pending


def _windows(session: Session, keys: list[tuple[int, int]]) -> dict[int, list[dict]]:
    """Feature dicts of steps ``step - _LOOKBACK .. step`` of each (stay, step), oldest first.

    Only those steps are read (by their unique (stay, step) key), in chunks that keep the
    statement's parameters well under SQLite's and PostgreSQL's limits.
    """
    wanted = sorted(
        {(sid, s) for sid, step in keys for s in range(max(step - _LOOKBACK, 0), step + 1)}
    )
    out: dict[int, list[tuple[int, dict]]] = {}
    for i in range(0, len(wanted), _CHUNK):
        q = sa.select(Step.stay_id, Step.step, Step.features).where(
            sa.tuple_(Step.stay_id, Step.step).in_(wanted[i : i + _CHUNK])
        )
        for sid, step, feats in session.execute(q):
            out.setdefault(sid, []).append((step, feats))
    return {sid: [f for _, f in sorted(rows, key=lambda r: r[0])] for sid, rows in out.items()}


def patient_queue(
    session: Session,
    user: SignedInUser,
    *,
    status: str = "pending",
    stay_id: int | None = None,
    flagged_only: bool = False,
    page: int = 1,
    page_size: int = 20,
    now: datetime | None = None,
) -> QueuePage:
    """One page of patients, most urgent first, with their current decision.

    Parameters
    ----------
    status : {"pending", "reviewed", "all"}
        Status of the patient's *current* decision.
    stay_id : int, optional
        Only this stay (its id in its source).
    flagged_only : bool
        Only patients whose current decision is not backed by a single dose (deferred or
        low-confidence).
    page, page_size : int
        1-based page and rows per page (1..200).

    Each row holds: ``id`` (the recommendation), ``stay_id``, ``age``, ``sex``, ``step``,
    ``decision_time``, ``waiting_hours``, ``urgency`` and ``why`` (words), ``MAP``, ``lactate``,
    ``SOFA`` (last measured), ``recommendation`` (a dose range or "defer ..."), ``reason`` (in
    words), ``flagged``, ``status``.
    """
    require(user, "view_queue")
    if status not in QUEUE_STATUSES:
        raise StoreError(f"unknown status filter {status!r}; use one of {QUEUE_STATUSES}")
    if not 1 <= int(page_size) <= 200:
        raise StoreError("page_size must be 1..200")
    now = now or utcnow()
    read_only(session)
    newest, pending = _current(session, stay_id)
    keep = {
        sid: v
        for sid, v in newest.items()
        if (status == "all" or (status == "pending") == (v[2] == "pending"))
        and (not flagged_only or v[3])
    }
    older_pending = pending - sum(v[2] == "pending" for v in newest.values())
    rec_ids = [v[1] for v in keep.values()]
    created = {}
    for i in range(0, len(rec_ids), 500):
        q = sa.select(Recommendation.id, Recommendation.created_at).where(
            Recommendation.id.in_(rec_ids[i : i + 500])
        )
        created.update(dict(session.execute(q).all()))
    windows = _windows(session, [(sid, v[0]) for sid, v in keep.items()])
    scored = []
    for sid, (_step, rid, _status, _flagged) in keep.items():
        waiting = max((now - created[rid]).total_seconds() / 3600, 0.0)
        window = windows.get(sid, [])
        score, why = urgency(window, waiting if _status == "pending" else 0.0)
        scored.append((-score, sid, rid, waiting, why, window))
    scored.sort(key=lambda r: (r[0], r[1]))
    n = len(scored)
    pages = max(math.ceil(n / page_size), 1)
    page = min(max(int(page), 1), pages)
    shown = scored[(page - 1) * page_size : page * page_size]
    recs = {}
    if shown:
        q = (
            sa.select(Recommendation, Stay, Gate.method, Step.charttime)
            .join(Stay, Stay.stay_id == Recommendation.stay_id)
            .outerjoin(Gate, Gate.id == Recommendation.gate_id)
            .outerjoin(
                Step, (Step.stay_id == Recommendation.stay_id) & (Step.step == Recommendation.step)
            )
            .where(Recommendation.id.in_([r[2] for r in shown]))
        )
        recs = {r.id: (r, st, method, t) for r, st, method, t in session.execute(q)}
    rows = []
    for neg, _sid, rid, waiting, why, window in shown:
        r, st, method, decided = recs[rid]
        last = window[-1] if window else {}
        rows.append(
            {
                "id": r.id,
                "stay_id": st.source_stay_id,
                "source": st.source,
                "age": st.age,
                "sex": {0: "M", 1: "F"}.get(st.gender, "?"),
                "step": r.step,
                "decision_time": decided,
                "waiting_hours": waiting,
                "urgency": -neg,
                "why": ", ".join(why),
                "MAP": _last([last.get("MeanBP")]),
                "lactate": _last([w.get("Arterial_lactate") for w in window]),
                "SOFA": _last([w.get("SOFA") for w in window]),
                "recommendation": recommendation_text(r.action, r.prediction_set),
                "reason": reason_in_words(
                    method, r.reason, r.action, r.prediction_set, r.alpha, max(r.probabilities)
                ),  # fmt: skip
                "flagged": r.flagged,
                "status": r.status,
            }
        )
    return QueuePage(
        rows=rows,
        patients=n,
        page=page,
        pages=pages,
        page_size=int(page_size),
        pending_decisions=pending,
        older_pending=older_pending,
        flagged=sum(v[3] for v in keep.values()),
        filters={"status": status, "stay_id": stay_id, "flagged_only": flagged_only},
    )


def next_patient(session: Session, user: SignedInUser, *, after: int | None = None) -> int | None:
    """The most urgent pending patient's current decision other than ``after`` (a
    recommendation id just reviewed or skipped), or None when nobody is waiting."""
    page = patient_queue(session, user, status="pending", page_size=2)
    for row in page.rows:
        if row["id"] != after:
            return row["id"]
    return None
