"""Issue 17, defects 4 and 7: an audit trail that catches every edit; secure defaults.

Defect 4: deleting the newest non-review event, emptying a trail without reviews, editing a
review's chosen action and promoting a user outside SAFER all verified ``ok: true``.
Defect 7: no sign-in throttling; weak passwords and look-alike user names accepted; note text
and password hashes in SQLAlchemy's debug log.
"""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from safer.store import (
    AccountLockedError,
    AuthenticationError,
    StoreError,
    add_user,
    authenticate,
    decision_detail,
    list_events,
    load_cohort,
    review_queue,
    set_role,
    submit_review,
    verify_trail,
)
from safer.store.audit import parse_anchor


def _sqlite_only(Session):
    if Session.kw["bind"].dialect.name != "sqlite":
        pytest.skip("on PostgreSQL a trigger refuses DELETE on audit_events (tested elsewhere)")


def _verify(Session, **kw):
    with Session() as s:
        return verify_trail(s, **kw)


def test_removing_the_newest_non_review_event_is_caught(loaded):
    Session, users, _ = loaded
    _sqlite_only(Session)
    assert _verify(Session).ok
    with Session() as s, s.begin():  # the newest event is add_recommendations, not a review
        s.execute(sa.text("DELETE FROM audit_events WHERE seq = (SELECT MAX(seq) FROM "
                          "audit_events)"))  # fmt: skip
    report = _verify(Session)
    assert not report.ok and "newest 1 event(s) were removed" in " ".join(report.problems)


def test_emptying_a_trail_without_reviews_is_caught(loaded):
    Session, users, _ = loaded
    _sqlite_only(Session)
    with Session() as s, s.begin():
        s.execute(sa.text("DELETE FROM audit_events"))
    report = _verify(Session)
    assert not report.ok and "were removed" in " ".join(report.problems)


def test_a_published_anchor_catches_a_trail_and_head_rewritten_together(loaded):
    Session, users, _ = loaded
    _sqlite_only(Session)
    anchor = parse_anchor(_verify(Session).as_dict()["anchor"])
    with Session() as s, s.begin():
        last = anchor[0]  # the newest event (add_recommendations) goes, and the head with it
        s.execute(sa.text(f"DELETE FROM audit_events WHERE seq = {last}"))
        s.execute(sa.text(f"UPDATE audit_head SET seq = {last - 1}, hash = (SELECT hash FROM "
                          f"audit_events WHERE seq = {last - 1})"))  # fmt: skip
    assert _verify(Session).ok  # consistent on its own ...
    report = _verify(Session, anchor=anchor)  # ... but not with what was published
    assert not report.ok and "published anchor" in report.problems[0]


def test_editing_a_reviews_chosen_action_is_caught(loaded):
    Session, users, _ = loaded
    with Session() as s:
        rec_id = review_queue(s, users["ana"])[0]["id"]
        submit_review(s, users["ana"], rec_id, "override", chosen_action=3, reason="MAP 80")
    assert _verify(Session).ok
    with Session() as s, s.begin():
        s.execute(sa.text("UPDATE reviews SET chosen_action = 12"))
    report = _verify(Session)
    assert not report.ok and "['chosen_action']" in " ".join(report.problems)


def test_role_changes_are_audited_and_a_promotion_outside_safer_is_caught(loaded):
    Session, users, _ = loaded
    with Session() as s, s.begin():
        set_role(s, "bo", "auditor", actor="di")
    with Session() as s:
        event = list_events(s, action="set_role")[0]
    assert event["actor"] == "di" and '"auditor"' in event["after"]
    assert _verify(Session).ok
    with Session() as s, s.begin():
        s.execute(sa.text("UPDATE users SET role = 'admin' WHERE username = 'ana'"))
    report = _verify(Session)
    assert not report.ok and "role 'clinician' -> 'admin'" in " ".join(report.problems)


def test_sign_in_is_locked_after_repeated_failures_and_the_lock_is_audited(Session):
    with Session() as s, s.begin():
        add_user(s, "ana", "ana-password", role="clinician")
    for _ in range(5):
        with Session() as s, pytest.raises(AuthenticationError, match="wrong user name"):
            authenticate(s, "ana", "guess-number-n")
    with Session() as s, pytest.raises(AccountLockedError, match="locked"):
        authenticate(s, "ANA", "ana-password")  # even the right password, any spelling
    for _ in range(5):  # an unknown name locks the same way: a lock reveals nothing
        with Session() as s, pytest.raises(AuthenticationError):
            authenticate(s, "nobody", "guess-number-n")
    with Session() as s, pytest.raises(AccountLockedError):
        authenticate(s, "nobody", "anything-at-all")
    with Session() as s:
        locks = list_events(s, action="lockout")
        assert {e["entity_id"] for e in locks} == {"ana", "nobody"} and verify_trail(s).ok


def test_a_success_resets_the_failure_count(Session):
    with Session() as s, s.begin():
        add_user(s, "ana", "ana-password", role="clinician")
    for _ in range(3):
        with Session() as s, pytest.raises(AuthenticationError):
            authenticate(s, "ana", "guess-number-n")
    with Session() as s:
        assert authenticate(s, "ana", "ana-password").username == "ana"
    for _ in range(4):
        with Session() as s, pytest.raises(AuthenticationError, match="wrong user name"):
            authenticate(s, "ana", "guess-number-n")


@pytest.mark.parametrize(
    "password, message",
    [("password", "most common"), (" " * 8, "different characters"),
     ("aaaaaaaaaa", "different characters"), ("Summer2025!", "most common"),
     ("short", "at least 8")],
)  # fmt: skip
def test_weak_passwords_are_refused(Session, password, message):
    with Session() as s, pytest.raises(StoreError, match=message):
        add_user(s, "ana", password, role="clinician")


@pytest.mark.parametrize(
    "name, message",
    [("ANA", "already exists"), ("\u0430na", "CYRILLIC SMALL LETTER A"),
     ("an\u200ba", "ZERO WIDTH SPACE"),
     ("\uff41\uff4e\uff41", "already exists")],  # fullwidth "ana": NFKC folds it
)  # fmt: skip
def test_look_alike_user_names_are_refused(Session, name, message):
    with Session() as s, s.begin():
        add_user(s, "ana", "ana-password", role="clinician")
    with Session() as s, pytest.raises(StoreError, match=message):
        add_user(s, name, "another-passphrase", role="admin")


def test_user_names_that_read_alike_are_refused(Session):
    with Session() as s, s.begin():
        add_user(s, "bill", "bill-password", role="clinician")
    for name in ("b1ll", "BiII", "bi1l"):
        with Session() as s, pytest.raises(StoreError, match="looks like the existing user"):
            add_user(s, name, "another-passphrase", role="admin")


def test_no_note_text_or_password_hash_in_any_log_at_any_level(Session, tiny_cohort, caplog):
    caplog.set_level(logging.DEBUG)
    engine_log = logging.getLogger("sqlalchemy.engine")
    engine_log.setLevel(logging.DEBUG)  # what `echo="debug"` does: rows and parameters
    try:
        with Session() as s, s.begin():
            user = add_user(s, "ana", "ana-password", role="clinician")
            load_cohort(s, tiny_cohort)
        with Session() as s:
            authenticate(s, "ana", "ana-password")
            hashed = s.execute(sa.text("SELECT password_hash FROM users")).scalar()
            notes = s.execute(sa.text("SELECT text FROM notes")).scalars().all()
        from safer.decisions import most_likely
        from safer.store import add_decisions
        from tests.store.conftest import make_proba

        proba = make_proba(len(tiny_cohort))
        with Session() as s, s.begin():
            add_decisions(s, tiny_cohort["stay_id"], tiny_cohort["step"], proba,
                          most_likely(proba, "m"), model_version="0.1")  # fmt: skip
        with Session() as s:
            last = review_queue(s, user, limit=1000)[-1]["id"]
            shown = decision_detail(s, user, last)["notes"]
    finally:
        engine_log.setLevel(logging.WARNING)
    assert shown and notes and any("SELECT" in r.getMessage() for r in caplog.records)
    logged = caplog.text
    assert hashed.split("$")[-1] not in logged and "$argon2" not in logged
    assert not any(t in logged for t in notes[:50])
