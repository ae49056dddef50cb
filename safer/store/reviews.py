"""The review queue and reviews: accept or override a recommendation, never twice.

A recommendation takes exactly one review. :func:`submit_review` refuses a second one with
:class:`ReviewConflictError` (it names who reviewed it and when) and writes nothing; a reviewer
who opened the recommendation at ``version`` v and finds it changed is refused the same way. The
guards are a unique constraint on ``reviews.recommendation_id`` and the optimistic-locking
``version`` column of ``recommendations``.

Examples
--------
>>> # with Session() as s:
>>> #     queue = review_queue(s, user)                 # flagged first
>>> #     detail = decision_detail(s, user, queue[0]["id"])
>>> #     rows = stay_history(s, user, queue[0]["id"])   # the cohort rows up to that decision
>>> #     submit_review(s, user, detail["id"], "override", chosen_action=6,
>>> #                   reason="MAP already 75 on current dose", expected_version=1)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from safer.actions import N_ACTIONS, describe_action
from safer.cohorts.schema import FEATURES
from safer.store.audit import append_event, lock_trail
from safer.store.db import read_only
from safer.store.errors import InvalidReviewError, ReviewConflictError, StoreError
from safer.store.schema import Gate, Note, Recommendation, Review, Stay, Step, User, utcnow
from safer.store.users import SignedInUser, require

__all__ = [
    "review_queue",
    "decision_detail",
    "stay_history",
    "submit_review",
    "DECISIONS",
    "QUEUE_STATUSES",
    "REASON_CODES",
]

DECISIONS = ("accept", "override", "defer")
QUEUE_STATUSES = ("pending", "reviewed", "all")
#: Coded review reasons (stored in ``reviews.reason_code``), with the words the console shows.
REASON_CODES: dict[str, str] = {
    "agree": "Agrees with my assessment",
    "clinical_picture": "Bedside picture differs from the charted data",
    "recent_change": "Treatment changed since the data (not yet charted)",
    "fluid_overload": "Fluid overload / poor fluid tolerance",
    "pressor_side_effects": "Pressor side effects (arrhythmia, ischaemia)",
    "goals_of_care": "Goals of care / patient or family preference",
    "not_applicable": "Not applicable now (patient left the unit, procedure, ...)",
    "uncertain": "Needs more information (senior review, tests pending)",
    "other": "Other (say why in the text)",
}
_STATUS_OF = {"accept": "accepted", "override": "overridden", "defer": "deferred"}


def _dose(action: int) -> str:
    return "defer (no single dose)" if action < 0 else describe_action(int(action))


def review_queue(
    session: Session,
    user: SignedInUser,
    *,
    status: str = "pending",
    flagged_only: bool = False,
    stay_id: int | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Recommendations to review, flagged (abstained or low-confidence) first, then oldest.

    ``stay_id`` filters on the stay's id in its source. Pending recommendations made on a
    superseded version of a stay (corrected data was loaded since) are not offered for review.
    """
    require(user, "view_queue")
    if status not in QUEUE_STATUSES:
        raise StoreError(f"unknown status filter {status!r}; use one of {QUEUE_STATUSES}")
    q = sa.select(Recommendation, Stay).join(Stay, Stay.stay_id == Recommendation.stay_id)
    if status == "pending":
        q = q.where(Recommendation.status == "pending", Stay.superseded_at.is_(None))
    elif status == "reviewed":
        q = q.where(Recommendation.status != "pending")
    if flagged_only:
        q = q.where(Recommendation.flagged.is_(True))
    if stay_id is not None:
        q = q.where(Stay.source_stay_id == int(stay_id))
    q = q.order_by(
        Recommendation.flagged.desc(), Recommendation.stay_id, Recommendation.step
    ).limit(limit)
    out = []
    for r, stay in session.execute(q).all():
        out.append(
            {
                "id": r.id,
                "stay_id": stay.source_stay_id,
                "source": stay.source,
                "stay_version": stay.version,
                "superseded": stay.superseded_at is not None,
                "step": r.step,
                "flagged": r.flagged,
                "abstained": r.abstained,
                "status": r.status,
                "recommended": _dose(r.action),
                "top_probability": max(r.probabilities),
                "reason": r.reason,
            }
        )
    return out


#: Trajectory columns of :func:`decision_detail` -> the cohort feature each one reads.
TRAJECTORY = {
    "MAP": "MeanBP",
    "HR": "HR",
    "SysBP": "SysBP",
    "SpO2": "SpO2",
    "RR": "RR",
    "temp": "Temp_C",
    "lactate": "Arterial_lactate",
    "SOFA": "SOFA",
    "GCS": "GCS",
    "creatinine": "Creatinine",
    "urine_ml": "output_4hourly",
    "balance_ml": "cumulated_balance",
    "mechvent": "mechvent",
    "vaso_max": "max_dose_vaso",
}


def decision_detail(session: Session, user: SignedInUser, rec_id: int) -> dict[str, Any]:
    """Everything the decision view shows for one recommendation (read-only for auditors).

    ``trajectory`` holds the stay's steps up to and including the decision (measurements in
    clinical units, :data:`TRAJECTORY`); the doses of the decision step itself (what was given
    *for* this decision) are left out (``None``); ``notes`` only those charted at or before the
    decision time. ``stay_id`` is the stay's id in its ``source``; the
    data shown is the stored version the recommendation was made on (``stay_version``;
    ``superseded`` when corrected data was loaded since).
    """
    require(user, "view_decision")
    read_only(session)
    rec = session.get(Recommendation, int(rec_id))
    if rec is None:
        raise StoreError(f"no recommendation {rec_id}; pick one from the review queue")
    stay = session.get(Stay, rec.stay_id)
    steps = session.execute(
        sa.select(Step)
        .where(Step.stay_id == rec.stay_id, Step.step <= rec.step)
        .order_by(Step.step)
    ).scalars()
    trajectory = []
    decision_time = None
    for s in steps:
        before = s.step < rec.step  # the decision step's doses are the answer: never shown
        trajectory.append(
            {
                "step": s.step,
                "charttime": s.charttime,
                **{name: s.features.get(feature) for name, feature in TRAJECTORY.items()},
                "fluid_ml": s.fluid_ml if before else None,
                "vaso_ugkgmin": s.vaso_ugkgmin if before else None,
                "action": s.action if before else None,
            }
        )
        if s.step == rec.step:
            decision_time = s.charttime
    notes = []
    if decision_time is not None:
        notes = [
            {"step": n.step, "note_time": n.note_time, "text": n.text}
            for n in session.execute(
                sa.select(Note)
                .where(Note.stay_id == rec.stay_id, Note.note_time <= decision_time)
                .order_by(Note.note_time)
            ).scalars()
        ]
    review = None
    if rec.review is not None:
        rv = rec.review
        review = {
            "decision": rv.decision,
            "chosen_action": rv.chosen_action,
            "chosen_dose": "none chosen (deferred)"
            if rv.chosen_action is None
            else describe_action(rv.chosen_action),
            "reason_code": rv.reason_code,
            "reason_words": REASON_CODES.get(rv.reason_code, ""),
            "reason": rv.reason,
            "reviewer": rv.reviewer.username,
            "created_at": rv.created_at,
        }
    return {
        "id": rec.id,
        "stay_id": stay.source_stay_id,
        "source": stay.source,
        "stay_version": stay.version,
        "superseded": stay.superseded_at is not None,
        "age": stay.age,
        "gender": stay.gender,
        "weight_kg": stay.weight_kg,
        "step": rec.step,
        "decision_time": decision_time,
        "created_at": rec.created_at,
        "method": None if rec.gate_id is None else _gate_method(session, rec.gate_id),
        "action": rec.action,
        "top_action": rec.top_action,
        "recommended": _dose(rec.action),
        "model_top_dose": describe_action(rec.top_action),
        "probabilities": list(rec.probabilities),
        "prediction_set": None if rec.prediction_set is None else list(rec.prediction_set),
        "prediction_set_doses": [describe_action(a) for a in rec.prediction_set or []],
        "abstained": rec.abstained,
        "low_confidence": rec.low_confidence,
        "flagged": rec.flagged,
        "reason": rec.reason,
        "alpha": rec.alpha,
        "model_hash": rec.model_hash,
        "calibration_hash": rec.calibration_hash,
        "status": rec.status,
        "version": rec.version,
        "trajectory": trajectory,
        "notes": notes,
        "review": review,
    }


def _gate_method(session: Session, gate_id: int) -> str | None:
    return session.execute(sa.select(Gate.method).where(Gate.id == gate_id)).scalar()


def stay_history(session: Session, user: SignedInUser, rec_id: int) -> pd.DataFrame:
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
        raise StoreError(
            f"stay {stay.source_stay_id} has no stored steps; reload it with `safer db load`"
        )
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
            stay_id=stay.source_stay_id,
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


def _conflict(session: Session, rec_id: int) -> ReviewConflictError:
    row = session.execute(
        sa.select(User.username, Review.created_at, Review.decision)
        .join(Review, Review.reviewer_id == User.id)
        .where(Review.recommendation_id == rec_id)
    ).first()
    if row is None:
        return ReviewConflictError(
            f"recommendation {rec_id} changed since you opened it; reload it and review again "
            "(nothing was saved)"
        )
    return ReviewConflictError(
        f"recommendation {rec_id} was already reviewed ({row.decision}) by {row.username} at "
        f"{row.created_at:%Y-%m-%d %H:%M:%S} UTC; your review was not saved — reload the queue"
    )


def submit_review(
    session: Session,
    user: SignedInUser,
    rec_id: int,
    decision: str,
    *,
    chosen_action: int | None = None,
    reason: str = "",
    reason_code: str = "",
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Accept, override or defer a recommendation, in one transaction with its audit event.

    - ``accept``: the recommended dose (only when the gate recommended one);
    - ``override``: ``chosen_action`` (0..24), inside or outside the recommended set (the event
      records which), with a coded reason (:data:`REASON_CODES`) or a free-text reason;
    - ``defer``: no dose is chosen (usual care / not applicable now), with a coded reason.

    ``reason_code = "other"`` needs the free text too. Commits on success; on any refusal
    nothing is written and the session is rolled back.

    Raises
    ------
    ReviewConflictError
        Someone reviewed it first, or it changed since ``expected_version``.
    InvalidReviewError, PermissionDeniedError
        A malformed review, or a user whose role may not review.
    """
    require(user, "review")
    reason = (reason or "").strip()
    reason_code = (reason_code or "").strip()
    if decision not in DECISIONS:
        raise InvalidReviewError(f"decision must be one of {DECISIONS}, got {decision!r}")
    if reason_code and reason_code not in REASON_CODES:
        raise InvalidReviewError(
            f"unknown reason code {reason_code!r}; use one of {', '.join(REASON_CODES)}"
        )
    if reason_code == "other" and not reason:
        raise InvalidReviewError("the reason 'other' needs a few words saying why")
    if session.in_transaction():
        session.rollback()
    try:
        with session.begin():
            lock_trail(session)
            rec = session.get(Recommendation, int(rec_id), populate_existing=True)
            if rec is None:
                raise StoreError(f"no recommendation {rec_id}; pick one from the review queue")
            if rec.status != "pending" or (
                expected_version is not None and rec.version != expected_version
            ):
                raise _conflict(session, rec.id)
            stay = session.get(Stay, rec.stay_id)
            if stay is not None and stay.superseded_at is not None:
                raise ReviewConflictError(
                    f"recommendation {rec.id} was made on data of stay {stay.source_stay_id} "
                    "that has since been corrected; review the recommendations made on the "
                    "corrected data instead (nothing was saved)"
                )
            if decision == "override":
                if chosen_action is None or not 0 <= int(chosen_action) < N_ACTIONS:
                    raise InvalidReviewError(f"choose a dose: action 0..{N_ACTIONS - 1}")
                if not reason and not reason_code:
                    raise InvalidReviewError(
                        "choosing another dose needs a reason; pick one or say why"
                    )
                chosen = int(chosen_action)
            elif decision == "defer":
                if not reason_code:
                    raise InvalidReviewError("deferring needs a reason; pick one from the list")
                chosen = None
            else:
                if rec.action < 0:
                    raise InvalidReviewError(
                        "the model made no single recommendation here, so there is nothing to "
                        "accept; choose a dose or defer"
                    )
                chosen = rec.action
            before = {"status": rec.status, "version": rec.version}
            review = Review(
                recommendation_id=rec.id,
                reviewer_id=user.id,
                decision=decision,
                chosen_action=chosen,
                reason_code=reason_code,
                reason=reason,
                created_at=utcnow(),
            )
            session.add(review)
            rec.status = _STATUS_OF[decision]
            session.flush()
            append_event(
                session,
                actor=user.username,
                action="review",
                entity="recommendation",
                entity_id=rec.id,
                before=before,
                after={
                    "status": rec.status,
                    "version": rec.version,
                    "decision": decision,
                    "chosen_action": chosen,
                    "recommended_action": rec.action,
                    "in_set": None
                    if chosen is None or rec.prediction_set is None
                    else chosen in rec.prediction_set,
                    "reason_code": reason_code,
                    "reason": reason,
                },
            )
            result = {"id": rec.id, "status": rec.status, "chosen_action": chosen}
    except (IntegrityError, StaleDataError):
        session.rollback()
        raise _conflict(session, int(rec_id)) from None
    return result
