"""Migrations, schema checks, users and loading."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import sqlalchemy as sa

from safer.conformal import Decisions
from safer.decisions import most_likely
from safer.store import (
    AuthenticationError,
    DatabaseUnavailableError,
    PermissionDeniedError,
    StaleSchemaError,
    StoreError,
    add_decisions,
    add_user,
    authenticate,
    connect,
    head_revision,
    load_cohort,
    require,
    review_queue,
    upgrade,
)
from safer.store.schema import Gate, Note, Recommendation, Stay, Step, User
from tests.store.conftest import make_proba


def test_empty_database_is_refused_until_upgraded(db_url):
    with pytest.raises(StaleSchemaError, match="safer db upgrade"):
        connect(db_url)
    assert upgrade(db_url) == head_revision()
    assert upgrade(db_url) == head_revision()  # a second upgrade is a no-op
    connect(db_url)


def test_stale_migration_is_refused(Session):
    with Session() as s, s.begin():
        s.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(StaleSchemaError, match="at migration 0000.*safer db upgrade"):
        connect(Session.kw["bind"].url.render_as_string(hide_password=False))


def test_unreachable_database_says_so_and_hides_the_password():
    url = "postgresql+psycopg2://ana:s3cret@127.0.0.1:9/safer"
    with pytest.raises(DatabaseUnavailableError, match="is it running") as info:
        connect(url)
    assert "s3cret" not in str(info.value)


def test_passwords_are_argon2_hashed_and_checked(Session):
    with Session() as s, s.begin():
        add_user(s, "ana", "ana-password", role="clinician")
    with Session() as s:
        stored = s.execute(sa.select(User.password_hash)).scalar()
        assert stored.startswith("$argon2") and "ana-password" not in stored
        assert authenticate(s, "ana", "ana-password").role == "clinician"
        with pytest.raises(AuthenticationError, match="wrong user name or password"):
            authenticate(s, "ana", "wrong-password")
        with pytest.raises(AuthenticationError, match="wrong user name or password"):
            authenticate(s, "nobody", "ana-password")


def test_bad_users_are_refused(Session):
    with Session() as s:
        with pytest.raises(StoreError, match="unknown role"):
            add_user(s, "x", "long-enough", role="nurse")
        with pytest.raises(StoreError, match="at least 8"):
            add_user(s, "x", "short", role="clinician")


def test_roles_are_enforced(loaded):
    Session, users, _ = loaded
    require(users["ana"], "review")
    with pytest.raises(PermissionDeniedError, match="may not review"):
        require(users["cy"], "review")
    with pytest.raises(PermissionDeniedError, match="may not view audit"):
        require(users["ana"], "view_audit")
    with Session() as s, pytest.raises(PermissionDeniedError):
        review_queue(s, users["cy"])


def test_load_is_idempotent_and_keeps_only_notes_before_decisions(Session, tiny_cohort):
    proba = make_proba(len(tiny_cohort))
    args = (tiny_cohort["stay_id"], tiny_cohort["step"], proba, most_likely(proba, "model-abc"))
    with Session() as s, s.begin():
        first = load_cohort(s, tiny_cohort)
        n_recs = add_decisions(s, *args, model_version="0.1")
    with Session() as s, s.begin():
        assert load_cohort(s, tiny_cohort) == {"stays": 0, "steps": 0, "notes": 0}
        assert add_decisions(s, *args, model_version="0.1") == 0
    n_notes = int((tiny_cohort["note"] != "").sum())
    assert first == {"stays": 12, "steps": len(tiny_cohort), "notes": n_notes}
    assert n_recs == len(tiny_cohort)
    with Session() as s:
        assert s.scalar(sa.select(sa.func.count(Stay.stay_id))) == 12
        assert s.scalar(sa.select(sa.func.count(Step.id))) == len(tiny_cohort)
        assert s.scalar(sa.select(sa.func.count(Note.id))) == n_notes
        recs = s.execute(sa.select(Recommendation)).scalars().all()
    low = proba.max(1) < 0.5
    assert sum(r.flagged for r in recs) == int(low.sum())
    assert all(r.reason.startswith("no gate") for r in recs)


def test_gated_recommendations_keep_sets_abstentions_and_hashes(Session, tiny_cohort):
    n = len(tiny_cohort)
    proba = make_proba(n, seed=3)
    sets = proba > 0.1
    action = np.where(sets.sum(1) == 1, proba.argmax(1), -1)
    reasons = np.array(["set of one" if a >= 0 else "set has several actions" for a in action])
    decisions = Decisions(action=action, sets=sets, reason=reasons, score=sets.sum(1),
                          method="lac", alpha=0.1, model_hash="model-abc",
                          calibration_hash="cal-123")  # fmt: skip
    with Session() as s, s.begin():
        load_cohort(s, tiny_cohort)
        keys = (tiny_cohort["stay_id"], tiny_cohort["step"])
        add_decisions(s, *keys, proba, decisions, model_version="0.1", report_path="r.html")
        gate = s.execute(sa.select(Gate)).scalar_one()
        assert (gate.method, gate.alpha, gate.report_path) == ("lac", 0.1, "r.html")
    with Session() as s:
        recs = s.execute(sa.select(Recommendation).order_by(Recommendation.id)).scalars().all()
    assert [r.abstained for r in recs] == list(action == -1)
    assert all(r.flagged for r in recs if r.abstained)
    assert recs[0].prediction_set == np.flatnonzero(sets[0]).tolist()
    assert {r.calibration_hash for r in recs} == {"cal-123"} and recs[0].alpha == 0.1
    assert np.allclose(recs[0].probabilities, proba[0], atol=1e-6)


def test_recommendations_for_unknown_steps_are_refused(Session, tiny_cohort):
    proba = make_proba(1)
    with Session() as s, pytest.raises(StoreError, match="load the cohort first"):
        add_decisions(s, [999999], [0], proba, most_likely(proba, "m"), model_version="0.1")


def test_patient_text_never_reaches_the_logs(Session, tiny_cohort, caplog):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    try:
        with Session() as s, s.begin():
            load_cohort(s, tiny_cohort)
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    texts = [t for t in tiny_cohort["note"] if t][:20]
    assert texts
    logged = caplog.text
    assert not any(t in logged for t in texts)
