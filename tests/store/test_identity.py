"""Issue 17, defect 1: recommendations stored against the wrong patient.

A stay is its source, its id and its data (fingerprint): another patient under a stored id is
refused naming both; corrected data is a new version, the old one kept, the change audited;
decisions always attach to the data they were made on.
"""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest
import sqlalchemy as sa

from safer.cohorts import simulate_cohort
from safer.decisions import most_likely
from safer.store import (
    StayConflictError,
    add_decisions,
    add_user,
    decision_detail,
    list_events,
    load_cohort,
    review_queue,
    stay_history,
    submit_review,
    verify_trail,
)
from safer.store.audit import GENESIS, event_hash
from safer.store.schema import AuditEvent, Recommendation, Stay, Step
from tests.store.conftest import make_proba


@pytest.fixture(scope="module")
def other_patients():
    """12 other patients numbered like the tiny cohort (simulated ids start at 200001)."""
    return simulate_cohort(n_stays=12, seed=12, progress=False)


def _counts(s):
    return (s.scalar(sa.select(sa.func.count()).select_from(Stay)),
            s.scalar(sa.select(sa.func.count()).select_from(Step)))  # fmt: skip


def test_another_patient_under_a_stored_id_is_refused_naming_both(
    Session, tiny_cohort, other_patients
):
    assert set(other_patients["stay_id"]) == set(tiny_cohort["stay_id"])  # the trap
    with Session() as s, s.begin():
        load_cohort(s, tiny_cohort)
    with Session() as s:
        before = _counts(s)
    with Session() as s, pytest.raises(StayConflictError) as info, s.begin():
        load_cohort(s, other_patients)
    sid = int(tiny_cohort["stay_id"].min())
    old_age = tiny_cohort.loc[tiny_cohort["stay_id"] == sid, "age"].iloc[0]
    new_age = other_patients.loc[other_patients["stay_id"] == sid, "age"].iloc[0]
    message = str(info.value)
    assert f"stay {sid}" in message and f"age {old_age:g}" in message
    assert f"age {new_age:g}" in message and "Nothing was written" in message
    assert "--source" in message and "--correct" in message
    with Session() as s:
        assert _counts(s) == before


def test_a_second_source_gets_its_own_stays_and_decisions(Session, tiny_cohort, other_patients):
    proba = make_proba(len(other_patients), seed=5)
    with Session() as s, s.begin():
        load_cohort(s, tiny_cohort)
        load_cohort(s, other_patients, source="site-b")
        add_decisions(s, other_patients["stay_id"], other_patients["step"], proba,
                      most_likely(proba, "m"), model_version="0.1", source="site-b")  # fmt: skip
        clinician = add_user(s, "ana", "ana-password", role="clinician")
    with Session() as s:
        rec = s.execute(sa.select(Recommendation).order_by(Recommendation.id)).scalars().first()
        rows = stay_history(s, clinician, rec.id)
        detail = decision_detail(s, clinician, rec.id)
    truth = other_patients[other_patients["stay_id"] == detail["stay_id"]]
    assert detail["source"] == "site-b"
    np.testing.assert_allclose(rows["HR"], truth["HR"].iloc[: len(rows)])
    assert rows["age"].iloc[0] == truth["age"].iloc[0]  # the site-b patient, not site a's


def test_corrected_data_is_a_new_version_and_the_old_one_is_kept(Session, tiny_cohort):
    sid = int(tiny_cohort["stay_id"].min())
    corrected = tiny_cohort.copy()
    corrected.loc[corrected["stay_id"] == sid, "HR"] += 7.0
    proba = make_proba(len(tiny_cohort))
    keys = (tiny_cohort["stay_id"], tiny_cohort["step"])
    with Session() as s, s.begin():
        load_cohort(s, tiny_cohort)
        add_decisions(s, *keys, proba, most_likely(proba, "m"), model_version="0.1")
        clinician = add_user(s, "ana", "ana-password", role="clinician")
    with Session() as s, s.begin():
        counts = load_cohort(s, corrected, corrections=True, actor="ana")
        assert counts["corrected"] == 1 and counts["stays"] == 1
        again = add_decisions(s, *keys, proba, most_likely(proba, "m"), model_version="0.1")
    assert again == int((tiny_cohort["stay_id"] == sid).sum())  # decisions on the new data
    with Session() as s:
        versions = (
            s.execute(sa.select(Stay).where(Stay.source_stay_id == sid).order_by(Stay.version))
            .scalars()
            .all()
        )
        assert [v.version for v in versions] == [1, 2]
        assert versions[0].superseded_at is not None and versions[1].superseded_at is None
        first = sa.select(Step.features).where(Step.stay_id == versions[0].stay_id, Step.step == 0)
        old_hr = s.execute(first).scalar()["HR"]
        event = list_events(s, action="correct_stay")[0]
        queue = review_queue(s, clinician, stay_id=sid, limit=1000)
        old_rec = s.execute(sa.select(Recommendation.id).where(
            Recommendation.stay_id == versions[0].stay_id)).scalars().first()  # fmt: skip
        assert verify_trail(s).ok
    assert old_hr == tiny_cohort.loc[tiny_cohort["stay_id"] == sid, "HR"].iloc[0]  # kept
    assert json.loads(event["after"])["version"] == 2 and event["actor"] == "ana"
    assert {r["stay_version"] for r in queue} == {2}  # only decisions on the corrected data
    with Session() as s, pytest.raises(Exception, match="corrected"):
        submit_review(s, clinician, old_rec, "override", chosen_action=3, reason="x")
    with Session() as s, s.begin():  # loading the corrected data again adds nothing
        assert load_cohort(s, corrected)["stays"] == 0


def test_a_database_of_the_previous_schema_keeps_its_stays_and_trail(db_url):
    from alembic import command

    from safer.store import connect, upgrade
    from safer.store.db import _alembic_config, make_engine

    url = db_url
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
        conn.execute(sa.text(
            "INSERT INTO stays (stay_id, age, gender, weight_kg, died, n_steps, loaded_at) "
            "VALUES (200001, 61.0, 1, 70.0, 0, 3, '2026-01-01 00:00:00')"))  # fmt: skip
        when = datetime(2026, 1, 1)
        fields = dict(actor="cli", action="load_cohort", entity="cohort", entity_id="-",
                      before="null", after="null")  # fmt: skip
        digest = event_hash(GENESIS, 1, when, **fields)  # an event as 0001's SAFER wrote it
        conn.execute(sa.insert(AuditEvent.__table__).values(
            seq=1, created_at=when, prev_hash=GENESIS, hash=digest, **fields))  # fmt: skip
    upgrade(url)
    engine.dispose()
    with connect(url)() as s:
        stay = s.get(Stay, 200001)
        assert (stay.source, stay.source_stay_id, stay.version) == ("default", 200001, 1)
        assert verify_trail(s).ok  # the migration anchored the existing trail
