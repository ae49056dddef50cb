"""The audit trail: append-only, hash-chained events, and their verification.

Every event stores who did what to which entity, when, and the state before and after (as
canonical JSON). ``hash = sha256(prev_hash | seq | created_at | actor | action | entity |
entity_id | before | after)`` and each event names its predecessor's hash, so changing or
removing any row breaks the chain; :func:`verify_trail` finds the first break. On PostgreSQL a
trigger also refuses UPDATE, DELETE and TRUNCATE on the table.

Examples
--------
>>> # with Session() as s, s.begin():
>>> #     append_event(s, actor="ana", action="review", entity="recommendation",
>>> #                  entity_id=7, before={"status": "pending"}, after={"status": "accepted"})
>>> # verify_trail(s).ok  -> True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from safer.store.schema import AuditEvent, Review, utcnow

__all__ = ["GENESIS", "append_event", "lock_trail", "verify_trail", "TrailReport", "list_events"]

GENESIS = "0" * 64
_LOCK_KEY = 7_270_517  # PostgreSQL advisory-lock key that serialises appends to the chain


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _time(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%f")


def event_hash(
    prev_hash: str,
    seq: int,
    created_at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str,
    before: str,
    after: str,
) -> str:
    """The SHA-256 chaining hash of one event's fields (hex)."""
    parts = [
        prev_hash,
        str(seq),
        _time(created_at),
        actor,
        action,
        entity,
        entity_id,
        before,
        after,
    ]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def lock_trail(session: Session) -> None:
    """Serialise writers of the trail for the rest of this transaction.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: every transaction already holds the
    write lock (``BEGIN IMMEDIATE``, see :func:`safer.store.db.make_engine`).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


def append_event(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: Any,
    before: Any = None,
    after: Any = None,
) -> AuditEvent:
    """Append one event to the chain inside the caller's transaction (commit to keep it)."""
    lock_trail(session)
    last = session.execute(
        sa.select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
    created = utcnow()
    fields = {
        "actor": str(actor),
        "action": str(action),
        "entity": str(entity),
        "entity_id": str(entity_id),
        "before": _canonical(before),
        "after": _canonical(after),
    }
    digest = event_hash(prev, seq, created, **fields)
    event = AuditEvent(seq=seq, created_at=created, prev_hash=prev, hash=digest, **fields)
    session.add(event)
    session.flush()
    return event


@dataclass
class TrailReport:
    """Result of :func:`verify_trail`: ``ok`` and, if not, every problem found."""

    ok: bool
    n_events: int
    problems: list[str] = field(default_factory=list)
    head_hash: str = GENESIS

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "n_events": self.n_events,
            "head_hash": self.head_hash,
            "problems": self.problems,
        }


def verify_trail(session: Session, *, max_problems: int = 50) -> TrailReport:
    """Recompute the chain; report tampered, removed or reordered events.

    Also checks that every stored review has its ``review`` event, so removing the newest event
    (which leaves the chain itself intact) is caught too.
    """
    problems: list[str] = []
    prev, expected_seq, n = GENESIS, 1, 0
    rows = session.execute(sa.select(AuditEvent).order_by(AuditEvent.seq)).scalars()
    for ev in rows:
        n += 1
        if ev.seq != expected_seq:
            problems.append(f"events {expected_seq}..{ev.seq - 1} are missing (removed?)")
        if ev.prev_hash != prev:
            problems.append(f"event {ev.seq} does not follow the previous event (chain broken)")
        recomputed = event_hash(
            ev.prev_hash,
            ev.seq,
            ev.created_at,
            ev.actor,
            ev.action,
            ev.entity,
            ev.entity_id,
            ev.before,
            ev.after,
        )
        if recomputed != ev.hash:
            problems.append(f"event {ev.seq} was altered after it was written (hash mismatch)")
        prev, expected_seq = ev.hash, ev.seq + 1
    reviewed = set(
        session.execute(
            sa.select(AuditEvent.entity_id).where(
                AuditEvent.action == "review", AuditEvent.entity == "recommendation"
            )
        ).scalars()
    )
    missing = session.execute(sa.select(Review.recommendation_id)).scalars()
    lost = sorted(r for r in missing if str(r) not in reviewed)
    if lost:
        problems.append(
            f"{len(lost)} review(s) have no audit event (events removed?): recommendations "
            f"{lost[:10]}{' ...' if len(lost) > 10 else ''}"
        )
    return TrailReport(
        ok=not problems, n_events=n, problems=problems[:max_problems], head_hash=prev
    )


def list_events(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Audit events (newest first) as plain dicts, optionally filtered."""
    query = sa.select(AuditEvent).order_by(AuditEvent.seq.desc())
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action == action)
    if since is not None:
        query = query.where(AuditEvent.created_at >= since)
    if until is not None:
        query = query.where(AuditEvent.created_at <= until)
    if limit:
        query = query.limit(limit)
    return [
        {
            "seq": ev.seq,
            "created_at": ev.created_at,
            "actor": ev.actor,
            "action": ev.action,
            "entity": ev.entity,
            "entity_id": ev.entity_id,
            "before": ev.before,
            "after": ev.after,
            "hash": ev.hash,
        }
        for ev in session.execute(query).scalars()
    ]
