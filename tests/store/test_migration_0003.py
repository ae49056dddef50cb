"""Migration 0003 (deferrals, coded reasons) on a database holding 0002's reviews and trail."""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa

from safer.store.audit import GENESIS, event_hash
from safer.store.schema import AuditEvent, AuditHead


def test_a_0002_database_keeps_its_reviews_and_trail_and_then_takes_a_deferral(db_url):
    from alembic import command

    from safer.store import (
        connect,
        get_user,
        head_revision,
        submit_review,
        upgrade,
        verify_trail,
    )
    from safer.store.db import _alembic_config, make_engine
    from safer.store.schema import Review

    engine = make_engine(db_url)
    when = datetime(2026, 1, 1)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0002")
        conn.execute(
            sa.text(
                "INSERT INTO users (id, username, password_hash, role, active, created_at) "
                "VALUES (1, 'ana', 'x', 'clinician', true, '2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO stays (stay_id, source, source_stay_id, version, age, gender, "
                "weight_kg, died, n_steps, loaded_at) VALUES "
                "(200001, 'default', 200001, 1, 61.0, 1, 70.0, 0, 2, '2026-01-01 00:00:00')"
            )
        )
        for step in (0, 1):
            conn.execute(
                sa.text(
                    "INSERT INTO steps (stay_id, step, charttime, action, features) VALUES "
                    f"(200001, {step}, '2026-01-01 0{4 * step}:00:00', 0, '{{}}')"
                )
            )
        conn.execute(
            sa.text(
                "INSERT INTO model_runs (id, model_hash, model_version, created_at) "
                "VALUES (1, 'm', '0.1', '2026-01-01 00:00:00')"
            )
        )
        proba = json.dumps([0.04] * 25)
        for rid, step, status in ((1, 0, "overridden"), (2, 1, "pending")):
            conn.execute(
                sa.text(
                    "INSERT INTO recommendations (id, stay_id, step, model_run_id, action, "
                    "top_action, probabilities, abstained, low_confidence, flagged, reason, "
                    "model_hash, calibration_hash, status, version, created_at) VALUES "
                    f"({rid}, 200001, {step}, 1, -1, 0, '{proba}', true, true, true, 'abstain', "
                    f"'m', '', '{status}', 1, '2026-01-01 00:00:00')"
                )
            )
        conn.execute(
            sa.text(
                "INSERT INTO reviews (recommendation_id, reviewer_id, decision, chosen_action, "
                "reason, created_at) VALUES (1, 1, 'override', 3, 'MAP 80', '2026-01-01 01:00:00')"
            )
        )
        events = [
            ("system", "add_user", "user", "1", {"username": "ana", "role": "clinician"}),
            ("ana", "review", "recommendation", "1",  # as 0002's SAFER wrote it: no reason code
             {"status": "overridden", "decision": "override", "chosen_action": 3,
              "recommended_action": -1, "reason": "MAP 80"}),
        ]  # fmt: skip
        prev = GENESIS
        for seq, (actor, action, entity, entity_id, after) in enumerate(events, start=1):
            fields = dict(actor=actor, action=action, entity=entity, entity_id=entity_id,
                          before="null", after=json.dumps(after, sort_keys=True,
                                                          separators=(",", ":")))  # fmt: skip
            digest = event_hash(prev, seq, when, **fields)
            conn.execute(sa.insert(AuditEvent.__table__).values(
                seq=seq, created_at=when, prev_hash=prev, hash=digest, **fields))  # fmt: skip
            prev = digest
        conn.execute(sa.insert(AuditHead.__table__).values(id=1, seq=2, hash=prev,
                                                            updated_at=when))  # fmt: skip
    assert upgrade(db_url) == head_revision()  # through 0003 (and the later migrations)
    engine.dispose()
    Session = connect(db_url)
    with Session() as s:
        assert verify_trail(s).ok, verify_trail(s).problems
        old = s.execute(sa.select(Review)).scalar_one()
        assert (old.decision, old.chosen_action, old.reason_code) == ("override", 3, "")
        ana = get_user(s, 1)
        out = submit_review(s, ana, 2, "defer", reason_code="not_applicable")
    assert out == {"id": 2, "status": "deferred", "chosen_action": None}
    with Session() as s:
        assert verify_trail(s).ok
    Session.kw["bind"].dispose()
