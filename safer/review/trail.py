"""The audit trail as a table an auditor reads: who, when, which stay and step, doses in words.

:func:`trail_table` turns the hash-chained events (:func:`safer.store.list_events`) into rows
with the stay (its id in its source), the step, the recommended and the chosen dose in clinical
units, whether the chosen dose lies inside the recommended set, and the coded and free-text
reason; other events get a one-line summary. The raw events stay in the database; nothing here
changes them.

Examples
--------
>>> # with Session() as s:
>>> #     rows = trail_table(s, auditor, action="review")
>>> #     rows[0]["chosen"], rows[0]["inside set"]
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from safer.actions import describe_action
from safer.review.doses import in_set, recommendation_text
from safer.store.audit import list_events
from safer.store.reviews import REASON_CODES
from safer.store.schema import Recommendation, Stay
from safer.store.users import SignedInUser, require

__all__ = ["trail_table", "TRAIL_COLUMNS", "EVENT_WORDS"]

TRAIL_COLUMNS = ("seq", "when", "who", "what", "stay", "step", "recommended", "chosen",
                 "inside set", "reason", "details", "recommendation id")  # fmt: skip
EVENT_WORDS = {
    "review": "review",
    "add_user": "user added",
    "set_role": "role changed",
    "set_active": "account (de)activated",
    "load_cohort": "cohort loaded",
    "add_recommendations": "recommendations stored",
    "what_if_viewed": "what-if viewed",
    "lockout": "sign-in locked",
    "correct_stay": "stay corrected",
}
_DECISION_WORDS = {"accept": "accepted", "override": "chose a dose", "defer": "deferred"}


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _summary(after: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in after.items() if not isinstance(v, (dict, list)))


def trail_table(
    session: Session,
    user: SignedInUser,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Readable rows of the audit trail (newest first), with :data:`TRAIL_COLUMNS`; a column
    that does not apply to an event (the stay of a "user added") is None."""
    require(user, "view_audit")
    events = list_events(session, actor=actor, action=action, since=since, limit=limit)
    rec_ids = {
        int(e["entity_id"])
        for e in events
        if e["entity"] == "recommendation" and str(e["entity_id"]).isdigit()
    }
    recs: dict[int, tuple[Recommendation, Stay]] = {}
    ids = sorted(rec_ids)
    for i in range(0, len(ids), 500):
        q = (
            sa.select(Recommendation, Stay)
            .join(Stay, Stay.stay_id == Recommendation.stay_id)
            .where(Recommendation.id.in_(ids[i : i + 500]))
        )
        recs.update({r.id: (r, st) for r, st in session.execute(q)})
    rows = []
    for e in events:
        after = _json(e["after"])
        row: dict[str, Any] = {c: None for c in TRAIL_COLUMNS}
        row.update(seq=e["seq"], when=e["created_at"], who=e["actor"],
                   what=EVENT_WORDS.get(e["action"], e["action"]))  # fmt: skip
        rec_stay = recs.get(int(e["entity_id"])) if str(e["entity_id"]).isdigit() else None
        if e["entity"] == "recommendation" and rec_stay is not None:
            rec, stay = rec_stay
            recommended = recommendation_text(rec.action, rec.prediction_set)
            row.update({"stay": stay.source_stay_id, "step": rec.step,
                        "recommendation id": rec.id, "recommended": recommended})  # fmt: skip
        if e["action"] == "review":
            chosen = after.get("chosen_action")
            decision = after.get("decision", "")
            row["what"] = f"review: {_DECISION_WORDS.get(decision, decision)}"
            row["chosen"] = "none (deferred)" if chosen is None else describe_action(int(chosen))
            inside = after.get("in_set")
            if inside is None and rec_stay is not None:
                inside = in_set(chosen, rec_stay[0].prediction_set)
            row["inside set"] = {True: "inside", False: "outside", None: None}[inside]
            code = after.get("reason_code", "")
            words = [REASON_CODES.get(code, code)] if code else []
            reason = " — ".join(words + ([after["reason"]] if after.get("reason") else []))
            row["reason"] = reason or None
        elif e["action"] == "what_if_viewed":
            row["details"] = f"channels {', '.join(after.get('channels', []))}"
        else:
            row["details"] = _summary(after) or None
        rows.append(row)
    return rows
