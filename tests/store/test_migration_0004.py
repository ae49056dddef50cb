"""Migration 0004 (stored urgency) on a 0003 database holding stays, steps and decisions: the
backfill stores the urgency the Python code computes, the queue ranks on it, and downgrade
gives back 0003's table with its rows."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from safer.store.urgency import clinical_urgency


def _old_decisions(conn, keys: list[tuple[int, int]]) -> None:
    """Decisions as 0003's SAFER stored them (no urgency columns), one per (stay, step)."""
    conn.execute(
        sa.text(
            "INSERT INTO model_runs (id, model_hash, model_version, created_at) "
            "VALUES (1, 'm', '0.1', '2026-01-01 00:00:00')"
        )
    )
    proba = json.dumps([0.04] * 25)
    for rid, (sid, step) in enumerate(keys, start=1):
        conn.execute(
            sa.text(
                "INSERT INTO recommendations (id, stay_id, step, model_run_id, action, "
                "top_action, probabilities, abstained, low_confidence, flagged, reason, "
                "model_hash, calibration_hash, status, version, created_at) VALUES "
                f"({rid}, {sid}, {step}, 1, -1, 0, '{proba}', true, true, true, 'abstain', "
                f"'m', '', 'pending', 1, '2026-01-01 00:00:00')"
            )
        )


def _columns(engine) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns("recommendations")}


def test_0004_backfills_the_python_urgency_and_downgrades(db_url, tiny_cohort):
    from alembic import command

    from safer.review import patient_queue
    from safer.store import add_user, connect, upgrade
    from safer.store.db import _alembic_config, make_engine
    from safer.store.loading import load_cohort
    from safer.store.schema import Recommendation, Step

    engine = make_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0003")
    with OrmSession(engine) as s, s.begin():  # stays and steps: unchanged by 0004
        load_cohort(s, tiny_cohort)
    with engine.connect() as conn:
        steps = {(sid, st): f for sid, st, f in conn.execute(
            sa.select(Step.stay_id, Step.step, Step.features))}  # fmt: skip
    keys = sorted(steps)
    with engine.begin() as conn:
        _old_decisions(conn, keys)
    assert "urgency" not in _columns(engine)

    assert upgrade(db_url) == "0004"
    expected = {}  # the definition, from the stored features: steps step-2..step, oldest first
    for rid, (sid, step) in enumerate(keys, start=1):
        window = [steps[(sid, k)] for k in range(max(step - 2, 0), step + 1) if (sid, k) in steps]
        expected[rid] = clinical_urgency(window)
    with engine.connect() as conn:
        stored = {
            rid: (u, why)
            for rid, u, why in conn.execute(
                sa.select(Recommendation.id, Recommendation.urgency, Recommendation.urgency_why)
            )
        }
    assert stored == expected  # exactly: the same function on the same features
    assert len({u for u, _ in stored.values()}) > 5 and any(w for _, w in stored.values())
    with engine.connect() as conn:
        marked = set(conn.scalars(sa.select(Recommendation.id).where(Recommendation.current)))
    last = {sid: max(st for s_, st in keys if s_ == sid) for sid, _ in keys}
    newest = {rid for rid, (sid, st) in enumerate(keys, start=1) if st == last[sid]}
    assert marked == newest  # each stay's newest decision, and only it
    names = {ix["name"] for ix in sa.inspect(engine).get_indexes("recommendations")}
    assert {"ix_recommendations_stay_step_id", "ix_recommendations_current_status"} <= names
    with engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(sa.update(Recommendation.__table__).values(urgency=None))  # NOT NULL now

    Session = connect(db_url)
    with Session() as s, s.begin():
        ana = add_user(s, "ana", "ana-password", role="clinician")
    with Session() as s:
        page = patient_queue(s, ana, page_size=200)
    assert {r["id"] for r in page.rows} == newest  # one row per patient, its newest step
    assert [r["urgency"] for r in page.rows] == sorted((r["urgency"] for r in page.rows),
                                                       reverse=True)  # fmt: skip
    Session.kw["bind"].dispose()

    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "0003")
    assert not {"urgency", "urgency_why", "current"} & _columns(engine)
    names = {ix["name"] for ix in sa.inspect(engine).get_indexes("recommendations")}
    assert not {"ix_recommendations_stay_step_id", "ix_recommendations_current_status"} & names
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM recommendations")) == len(keys)
    assert upgrade(db_url) == "0004"  # and up again
    engine.dispose()
