"""The audit trail: append-only, hash-chained events, and their verification.

Every event stores who did what to which entity, when, and the state before and after (as
canonical JSON). ``hash = sha256(prev_hash | seq | created_at | actor | action | entity |
entity_id | before | after)`` and each event names its predecessor's hash, so changing or
removing any row breaks the chain; :func:`verify_trail` finds every break. On PostgreSQL a
trigger also refuses UPDATE, DELETE and TRUNCATE on the table.

What the chain alone cannot see, the verifier checks too:

- removing the newest events, or all of them: every append also writes the *anchored head*
  (newest ``seq`` and ``hash``) to the ``audit_head`` table, outside the audited table, and the
  verifier compares the chain's end with it. ``safer audit-trail verify --json`` prints the head
  for publishing elsewhere (a ticket, a signed e-mail); ``--anchor SEQ:HASH`` later checks that
  the trail still holds that published event, so even a trail and head removed together are
  caught;
- editing a review (its decision, chosen action, reason, reason code or reviewer): each stored
  review must equal what its ``review`` event recorded;
- changing a user's name, role or active flag outside SAFER: each user must equal what its
  ``add_user`` / ``set_role`` / ``set_active`` events recorded.

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

from safer.store.errors import StoreError
from safer.store.schema import AuditEvent, AuditHead, Review, User, utcnow

__all__ = [
    "GENESIS",
    "append_event",
    "lock_trail",
    "parse_anchor",
    "verify_trail",
    "TrailReport",
    "list_events",
]

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

    A writer that changes rows another writer may lock (recommendations, stays) takes this lock
    *first*, before it reads or locks any of them, and so every such writer takes its locks in
    one order: a review, a cohort load or correction and a batch of recommendations never wait
    for each other in a cycle (PostgreSQL would abort one as a deadlock;
    ``tests/store/test_store_reviews.py`` has the case). :func:`append_event` takes it again
    (re-entrant within a transaction).

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
    session.merge(AuditHead(id=1, seq=seq, hash=digest, updated_at=created))
    session.flush()
    return event


@dataclass
class TrailReport:
    """Result of :func:`verify_trail`: ``ok`` and, if not, every problem found.

    Examples
    --------
    >>> import os, tempfile
    >>> from safer.store import add_user, connect, upgrade
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "safer.db"); _ = upgrade(url)
    >>> with connect(url)() as s, s.begin():
    ...     _ = add_user(s, "ana", "correct horse", role="clinician")  # an audited event
    >>> with connect(url)() as s:
    ...     report = verify_trail(s)
    >>> report.ok, report.n_events, report.problems, report.as_dict()["anchor"].startswith("1:")
    (True, 1, [], True)
    """

    ok: bool
    n_events: int
    problems: list[str] = field(default_factory=list)
    head_hash: str = GENESIS
    head_seq: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "n_events": self.n_events,
            "head_hash": self.head_hash,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "anchor": f"{self.head_seq}:{self.head_hash}",
            "problems": self.problems,
        }


def parse_anchor(text: str) -> tuple[int, str]:
    """``"SEQ:HASH"`` (as ``verify --json`` prints it under ``anchor``) -> ``(seq, hash)``."""
    seq, _, digest = str(text).strip().partition(":")
    if not seq.isdigit() or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        raise StoreError(
            f"an anchor is SEQ:HASH as `safer audit-trail verify --json` prints it (e.g. "
            f"12:{'ab' * 32}); got {text!r}"
        )
    return int(seq), digest


def verify_trail(
    session: Session, *, anchor: tuple[int, str] | None = None, max_problems: int = 50
) -> TrailReport:
    """Recompute the chain; report tampered, removed or reordered events.

    Also compares the chain's end with the anchored head, every review and every user with
    their events (module docstring), and, with ``anchor`` (a ``(seq, hash)`` published earlier),
    checks that the trail still holds that event.
    """
    problems: list[str] = []
    prev, expected_seq, n = GENESIS, 1, 0
    hashes: dict[int, str] = {}
    reviews: dict[str, dict] = {}
    users: dict[str, dict] = {}
    rows = session.execute(sa.select(AuditEvent).order_by(AuditEvent.seq)).scalars()
    for ev in rows:
        hashes[ev.seq] = ev.hash
        _collect(ev, reviews, users, problems)
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
    last_seq = expected_seq - 1
    head = session.get(AuditHead, 1)
    if head is None and n:
        problems.append("the anchored head is missing (removed?); the trail cannot be checked "
                        "for removed newest events")  # fmt: skip
    elif head is not None and (head.seq, head.hash) != (last_seq, prev):
        if head.seq > last_seq:
            problems.append(
                f"the trail ends at event {last_seq} but its anchored head is event {head.seq}: "
                f"the newest {head.seq - last_seq} event(s) were removed"
            )
        else:
            problems.append(
                f"the anchored head (event {head.seq}) does not match the trail's end (event "
                f"{last_seq}); events or the head were changed"
            )
    if anchor is not None:
        seq, digest = anchor
        if hashes.get(seq) != digest:
            problems.append(
                f"the published anchor {seq}:{digest[:12]}... is not in the trail (event {seq} "
                f"{'is missing' if seq not in hashes else 'has another hash'}): events were "
                "removed or rewritten since it was published"
            )
    problems += _review_problems(session, reviews)
    problems += _user_problems(session, users)
    return TrailReport(
        ok=not problems,
        n_events=n,
        problems=problems[:max_problems],
        head_hash=prev,
        head_seq=last_seq,
    )


def _collect(ev: AuditEvent, reviews: dict, users: dict, problems: list[str]) -> None:
    """Fold one event into the recorded state of reviews and users."""
    if ev.action not in ("review", "add_user", "set_role", "set_active"):
        return
    try:
        after = json.loads(ev.after) or {}
    except ValueError:
        problems.append(f"event {ev.seq} holds unreadable data")
        return
    if ev.action == "review" and ev.entity == "recommendation":
        reviews[ev.entity_id] = {**after, "reviewer": ev.actor}
    elif ev.entity == "user":
        state = users.setdefault(ev.entity_id, {})
        state.update({k: after[k] for k in ("username", "role", "active") if k in after})
        if ev.action == "add_user":
            state.setdefault("active", True)


def _review_problems(session: Session, recorded: dict[str, dict]) -> list[str]:
    problems, lost = [], []
    stored = session.execute(
        sa.select(Review, User.username).join(User, User.id == Review.reviewer_id)
    ).all()
    for review, reviewer in stored:
        event = recorded.get(str(review.recommendation_id))
        if event is None:
            lost.append(review.recommendation_id)
            continue
        now = {"decision": review.decision, "chosen_action": review.chosen_action,
               "reason": review.reason, "reviewer": reviewer,
               "reason_code": review.reason_code}  # fmt: skip
        said = {**event, "reason_code": event.get("reason_code", "")}  # before migration 0003
        changed = [k for k, v in now.items() if said.get(k) != v]
        if changed:
            problems.append(
                f"the review of recommendation {review.recommendation_id} differs from its audit "
                f"event in {changed} (changed after it was written)"
            )
    if lost:
        lost.sort()
        problems.append(
            f"{len(lost)} review(s) have no audit event (events removed?): recommendations "
            f"{lost[:10]}{' ...' if len(lost) > 10 else ''}"
        )
    return problems


def _user_problems(session: Session, recorded: dict[str, dict]) -> list[str]:
    problems = []
    for user in session.execute(sa.select(User).order_by(User.id)).scalars():
        event = recorded.get(str(user.id))
        if event is None:
            problems.append(f"user {user.username!r} has no audit event (added outside SAFER?)")
            continue
        now = {"username": user.username, "role": user.role, "active": bool(user.active)}
        changed = {k: (event.get(k), v) for k, v in now.items() if event.get(k, v) != v}
        if changed:
            what = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
            problems.append(
                f"user {user.username!r} differs from the audit trail ({what}): changed "
                "outside SAFER (use `safer db set-role`)"
            )
    return problems


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
