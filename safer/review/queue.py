"""The clinician's queue: one row per patient (the current decision), most urgent first.

A stay's *current decision* is its newest stored recommendation (latest step; the newest row
when several models or gates decided the same step) on the stay's current data version. Older
pending decisions of the same patient are not offered (the patient has moved on) but are counted,
so the counts are honest: ``patients`` (with a current decision in the chosen status),
``pending_decisions`` (every pending row, current or not) and ``older_pending`` (pending rows
behind a newer decision of the same patient).

Urgency (:func:`urgency`, defined in :mod:`safer.store.urgency` and re-exported here) is a
documented points score from the last measured values at or before the decision (sparse labs are
carried forward at most two blocks, 8 h): SOFA, MAP below 65, lactate above 2 and rising, SOFA
rising, and time waiting in the queue. It orders the queue; it is not a validated severity
score, and the queue shows *why* each patient is ranked where it is. Its clinical part is stored
with each decision, and each stay's current decision is marked (``recommendations.current``,
kept by :func:`safer.store.loading.refresh_current`), so the queue is counted, ranked and paged
in SQL (the waiting time added in the query): a page costs a few indexed queries, not a Python
pass over every patient.

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
from safer.store.urgency import (
    last_measured,
    urgency,
    waiting_points,
    waiting_points_sql,
    waiting_reason,
    windows,
)
from safer.store.users import SignedInUser, require

__all__ = ["QueuePage", "urgency", "patient_queue", "next_patient", "QUEUE_STATUSES"]

QUEUE_STATUSES = ("pending", "reviewed", "all")
_CHUNK = 900  # stay keys per query


@dataclass
class QueuePage:
    """One page of the patient queue and the honest counts around it.

    Examples
    --------
    Three simulated stays and a decision at every step (LAC gate on random probabilities):

    >>> import os, tempfile
    >>> import numpy as np
    >>> from safer.cohorts import simulate_cohort
    >>> from safer.conformal import calibrate_gate
    >>> from safer.store import add_decisions, add_user, connect, load_cohort, upgrade
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "safer.db"); _ = upgrade(url)
    >>> cohort = simulate_cohort(n_stays=3, seed=0, progress=False)
    >>> proba = np.random.default_rng(0).dirichlet(np.ones(25), size=len(cohort))
    >>> gate = calibrate_gate("lac", proba, cohort["action"], alpha=0.2, model_hash="m")
    >>> with connect(url)() as s, s.begin():
    ...     _ = load_cohort(s, cohort)
    ...     _ = add_decisions(s, cohort["stay_id"], cohort["step"], proba, gate.decide(proba),
    ...                       model_version="demo")
    ...     user = add_user(s, "ana", "correct horse", role="clinician")
    >>> with connect(url)() as s:
    ...     page = patient_queue(s, user, page_size=2)
    >>> page.patients, page.pages, len(page.rows), page.pending_decisions == len(cohort)
    (3, 2, 2, True)
    """

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


def _on_current_stays(q, stay_id: int | None):
    """``q`` limited to recommendations on current stay versions (and one stay, if given)."""
    q = q.join(Stay, Stay.stay_id == Recommendation.stay_id).where(Stay.superseded_at.is_(None))
    if stay_id is not None:
        q = q.where(Stay.source_stay_id == int(stay_id))
    return q


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

    Each row holds: ``id`` (the recommendation), ``stay_id``, ``age``, ``sex`` ("M", "F" or
    None), ``step``, ``decision_time``, ``waiting_hours``, ``urgency`` and ``why`` (words),
    ``MAP``, ``lactate``, ``SOFA`` (last measured, None when not charted), ``recommendation`` (a
    dose range or "defer ..."), ``reason`` (in words), ``flagged``, ``status``.
    """
    require(user, "view_queue")
    if status not in QUEUE_STATUSES:
        raise StoreError(f"unknown status filter {status!r}; use one of {QUEUE_STATUSES}")
    if not 1 <= int(page_size) <= 200:
        raise StoreError("page_size must be 1..200")
    now = now or utcnow()
    read_only(session)
    R = Recommendation
    is_pending = R.status == "pending"
    matches = sa.and_(
        sa.true() if status == "all" else is_pending if status == "pending" else ~is_pending,
        R.flagged if flagged_only else sa.true(),
    )
    if stay_id is None:  # every pending row, less those on superseded stay versions (few)
        superseded = session.scalars(
            sa.select(Stay.stay_id).where(Stay.superseded_at.is_not(None))
        ).all()
        pending = session.scalar(sa.select(sa.func.count(R.id)).where(is_pending))
        for i in range(0, len(superseded), _CHUNK):
            pending -= session.scalar(
                sa.select(sa.func.count(R.id)).where(
                    R.stay_id.in_(superseded[i : i + _CHUNK]), is_pending
                )
            )
    else:
        pending = session.scalar(
            _on_current_stays(sa.select(sa.func.count(R.id)), stay_id).where(is_pending)
        )
    current = R.current == sa.true()  # the stay's newest decision (safer.store.refresh_current)
    counts = sa.select(
        sa.func.count(R.id).filter(matches),
        sa.func.count(R.id).filter(matches, R.flagged),
        sa.func.count(R.id).filter(is_pending),
    ).where(current)
    if stay_id is not None:
        counts = _on_current_stays(counts, stay_id)
    n, flagged, current_pending = session.execute(counts).one()
    pages = max(math.ceil(n / page_size), 1)
    page = min(max(int(page), 1), pages)
    score = R.urgency + sa.case((is_pending, waiting_points_sql(R.created_at, now)), else_=0.0)
    ranked = sa.select(R.id).where(current, matches)
    if stay_id is not None:
        ranked = _on_current_stays(ranked, stay_id)
    shown = session.scalars(
        ranked.order_by(score.desc(), R.stay_id).limit(page_size).offset((page - 1) * page_size)
    ).all()
    recs = {}
    if shown:
        q = (
            sa.select(Recommendation, Stay, Gate.method, Step.charttime)
            .join(Stay, Stay.stay_id == Recommendation.stay_id)
            .outerjoin(Gate, Gate.id == Recommendation.gate_id)
            .outerjoin(
                Step, (Step.stay_id == Recommendation.stay_id) & (Step.step == Recommendation.step)
            )
            .where(Recommendation.id.in_(shown))
        )
        recs = {r.id: (r, st, method, t) for r, st, method, t in session.execute(q)}
    shown_windows = windows(session, [(recs[rid][0].stay_id, recs[rid][0].step) for rid in shown])
    rows = []
    for rid in shown:
        r, st, method, decided = recs[rid]
        window = shown_windows.get(r.stay_id, [])
        waiting = max((now - r.created_at).total_seconds() / 3600, 0.0)
        waited = waiting if r.status == "pending" else 0.0
        last = window[-1] if window else {}
        rows.append(
            {
                "id": r.id,
                "stay_id": st.source_stay_id,
                "source": st.source,
                "age": st.age,
                "sex": {0: "M", 1: "F"}.get(st.gender),
                "step": r.step,
                "decision_time": decided,
                "waiting_hours": waiting,
                "urgency": r.urgency + waiting_points(waited),
                "why": ", ".join([*r.urgency_why, *waiting_reason(waited)]),
                "MAP": last_measured([last.get("MeanBP")]),
                "lactate": last_measured([w.get("Arterial_lactate") for w in window]),
                "SOFA": last_measured([w.get("SOFA") for w in window]),
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
        older_pending=pending - current_pending,
        flagged=flagged,
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
