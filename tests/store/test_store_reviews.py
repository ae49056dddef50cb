"""Reviews cannot overwrite each other; the audit trail detects tampering and removal."""

from __future__ import annotations

import random
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from safer.store import (
    InvalidReviewError,
    PermissionDeniedError,
    ReviewConflictError,
    decision_detail,
    load_cohort,
    review_queue,
    submit_review,
    verify_trail,
)
from safer.store.audit import lock_trail
from safer.store.schema import AuditEvent, Recommendation, Review, Stay


def _first_id(Session, users):
    with Session() as s:
        return review_queue(s, users["ana"])[0]["id"]


def test_queue_puts_flagged_first_and_detail_hides_later_notes(loaded):
    Session, users, proba = loaded
    with Session() as s:
        queue = review_queue(s, users["ana"])
        flags = [row["flagged"] for row in queue]
        assert flags == sorted(flags, reverse=True) and any(flags)
        rec = queue[-1]
        detail = decision_detail(s, users["ana"], rec["id"])
    assert detail["trajectory"][-1]["step"] == rec["step"]
    assert all(n["note_time"] <= detail["decision_time"] for n in detail["notes"])
    assert "mL/4h" in detail["recommended"]


def test_accept_then_second_review_is_refused_and_nothing_overwritten(loaded):
    Session, users, _ = loaded
    rec_id = _first_id(Session, users)
    with Session() as s:
        assert submit_review(s, users["ana"], rec_id, "accept")["status"] == "accepted"
    with Session() as s, pytest.raises(ReviewConflictError, match="already reviewed.*by ana"):
        submit_review(s, users["bo"], rec_id, "override", chosen_action=3, reason="disagree")
    with Session() as s:
        reviews = s.execute(sa.select(Review)).scalars().all()
        assert [(r.recommendation_id, r.decision) for r in reviews] == [(rec_id, "accept")]
        assert verify_trail(s).ok


def test_stale_version_is_refused(loaded):
    Session, users, _ = loaded
    rec_id = _first_id(Session, users)
    with Session() as s, pytest.raises(ReviewConflictError, match="changed since you opened"):
        submit_review(s, users["ana"], rec_id, "accept", expected_version=99)


def test_override_needs_dose_and_reason_and_auditor_cannot_review(loaded):
    Session, users, _ = loaded
    rec_id = _first_id(Session, users)
    with Session() as s:
        with pytest.raises(InvalidReviewError, match="needs a reason"):
            submit_review(s, users["ana"], rec_id, "override", chosen_action=3, reason="  ")
        with pytest.raises(InvalidReviewError, match="choose a dose"):
            submit_review(s, users["ana"], rec_id, "override", reason="why")
        with pytest.raises(PermissionDeniedError):
            submit_review(s, users["cy"], rec_id, "accept")
        out = submit_review(s, users["ana"], rec_id, "override", chosen_action=7, reason="MAP 80")
    assert out == {"id": rec_id, "status": "overridden", "chosen_action": 7}
    with Session() as s:
        detail = decision_detail(s, users["ana"], rec_id)
    assert detail["review"]["reason"] == "MAP 80" and detail["review"]["reviewer"] == "ana"


def _review_some(Session, users, n=3):
    with Session() as s:
        ids = [row["id"] for row in review_queue(s, users["ana"])[:n]]
        for rec_id in ids:
            submit_review(s, users["ana"], rec_id, "override", chosen_action=1, reason="test")
    return ids


def _tamper(Session, sql):
    """Run a raw statement on the trail; on PostgreSQL first lift the append-only trigger."""
    with Session() as s, s.begin():
        if s.get_bind().dialect.name == "postgresql":
            s.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        s.execute(sa.text(sql))


def test_trail_detects_an_altered_event(loaded):
    Session, users, _ = loaded
    _review_some(Session, users)
    with Session() as s:
        assert verify_trail(s).ok
        last = s.scalar(sa.select(sa.func.max(AuditEvent.seq)))
    _tamper(Session, f"UPDATE audit_events SET after = '{{}}' WHERE seq = {last - 1}")
    with Session() as s:
        report = verify_trail(s)
    assert not report.ok and any("altered" in p for p in report.problems)


def test_trail_detects_a_removed_event_in_the_middle_or_at_the_end(loaded):
    Session, users, _ = loaded
    _review_some(Session, users)
    with Session() as s:
        last = s.scalar(sa.select(sa.func.max(AuditEvent.seq)))
    _tamper(Session, f"DELETE FROM audit_events WHERE seq = {last}")
    with Session() as s:
        report = verify_trail(s)
    assert not report.ok and any("no audit event" in p for p in report.problems)
    _tamper(Session, "DELETE FROM audit_events WHERE seq = 2")
    with Session() as s:
        report = verify_trail(s)
    assert any("missing" in p for p in report.problems)


def test_postgresql_trigger_refuses_update_and_delete(loaded):
    Session, users, _ = loaded
    if Session.kw["bind"].dialect.name != "postgresql":
        pytest.skip(
            "the append-only trigger exists on PostgreSQL only (SQLite relies on the hash chain)"
        )
    for sql in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events"):
        with Session() as s, pytest.raises(DBAPIError, match="append-only"), s.begin():
            s.execute(sa.text(sql))
    with Session() as s:
        assert verify_trail(s).ok


def test_concurrent_reviewers_lose_and_overwrite_nothing(loaded):
    """20 reviewers x 50 reviews, each its own session; every recommendation is wanted by two."""
    Session, users, _ = loaded
    if Session.kw["bind"].dialect.name != "postgresql":
        pytest.skip("the 20 x 50 concurrency test runs on PostgreSQL (set SAFER_TEST_PG_URL)")
    from safer.store import add_user

    with Session() as s, s.begin():
        reviewers = [add_user(s, f"r{i:02d}", "reviewer-pw", role="clinician") for i in range(20)]
        ids = list(s.execute(sa.select(Recommendation.id)).scalars())
    n_reviewers, per_reviewer = 20, 50
    targets = (ids * ((n_reviewers * per_reviewer) // len(ids) + 2))[
        : n_reviewers * per_reviewer // 2
    ]
    plan = targets + targets  # each target twice -> exactly one of the two attempts may win
    random.Random(0).shuffle(plan)
    wins: list[tuple[int, str, int]] = []
    conflicts: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        user = reviewers[k]
        for j, rec_id in enumerate(plan[k * per_reviewer : (k + 1) * per_reviewer]):
            action = (k + j) % 25
            try:
                with Session() as s:
                    submit_review(s, user, rec_id, "override", chosen_action=action, reason=f"{k}")
                with lock:
                    wins.append((rec_id, user.username, action))
            except ReviewConflictError:
                with lock:
                    conflicts.append(rec_id)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_reviewers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert len(wins) + len(conflicts) == n_reviewers * per_reviewer
    with Session() as s:
        stored = {
            r.recommendation_id: (r.reviewer.username, r.chosen_action)
            for r in s.execute(sa.select(Review)).scalars()
        }
        report = verify_trail(s)
    assert len(set(targets)) == len(stored)  # every contested recommendation reviewed once
    assert len(wins) == len(stored)  # 0 lost: every acknowledged review is stored
    assert all(stored[rec] == (who, act) for rec, who, act in wins)  # 0 overwritten
    assert report.ok, report.problems


def _advisory_waiters(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        ).scalar_one()


def _wait_for(condition, what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_review_and_a_correction_of_the_same_stay_queue_on_the_trail_without_deadlock(
    loaded, tiny_cohort
):
    """Every writer takes the audit trail's lock before any row lock, so a review and a stay
    correction that both wait for the trail run one after the other. (If the correction took the
    recommendation's row first, the review holding the trail would wait for that row and the
    correction for the trail: PostgreSQL would abort one of them as a deadlock.)"""
    Session, users, _ = loaded
    engine = Session.kw["bind"]
    if engine.dialect.name != "postgresql":
        pytest.skip("row and advisory locks are PostgreSQL's; SQLite serialises every writer")
    with Session() as s:
        rec, source_id = s.execute(
            sa.select(Recommendation.id, Stay.source_stay_id)
            .join(Stay, Stay.stay_id == Recommendation.stay_id)
            .where(Recommendation.current, Recommendation.status == "pending")
            .limit(1)
        ).one()
    corrected = tiny_cohort[tiny_cohort["stay_id"] == source_id].copy()
    corrected["HR"] += 1.0
    errors: list[BaseException] = []

    def run(work) -> None:
        try:
            with Session() as s:
                work(s)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def review(s) -> None:
        submit_review(s, users["ana"], rec, "override", chosen_action=3, reason="lock order")

    def correct(s) -> None:
        with s.begin():
            load_cohort(s, corrected, corrections=True)

    holder = Session()
    holder.begin()
    lock_trail(holder)  # both writers queue behind this transaction, the review first
    reviewer = threading.Thread(target=run, args=(review,))
    reviewer.start()
    _wait_for(lambda: _advisory_waiters(engine) == 1, "the review to wait for the trail")
    loader = threading.Thread(target=run, args=(correct,))
    loader.start()
    _wait_for(lambda: _advisory_waiters(engine) == 2, "the correction to wait for the trail")
    holder.commit()
    holder.close()
    reviewer.join(60)
    loader.join(60)
    assert not errors, errors
    with Session() as s:
        stored = s.execute(sa.select(Review).where(Review.recommendation_id == rec)).scalar_one()
        assert stored.chosen_action == 3
        versions = s.execute(
            sa.select(Stay.version).where(Stay.source_stay_id == source_id)
        ).scalars()
        assert sorted(versions) == [1, 2]
        assert verify_trail(s).ok
