"""Stored urgency: the queue ranks in SQL.

- ``recommendations.urgency`` (float) and ``recommendations.urgency_why`` (JSON list of words):
  the clinical part of the queue's urgency (:func:`safer.store.urgency.clinical_urgency` of the
  decision's last blocks), computed once when a decision is stored. Existing rows are
  backfilled here with the same function, from their stored steps; then both columns are
  NOT NULL.
- ``recommendations.current`` (bool): the stay's current decision (newest step, then newest
  row, on a current stay version), kept by :func:`safer.store.loading.refresh_current`;
  backfilled here with it.
- indexes ``ix_recommendations_stay_step_id`` on (stay_id, step, id) (finding each stay's
  newest decision) and ``ix_recommendations_current_status`` on (current, status) (the queue's
  filters).

Downgrade drops the indexes and the three columns (the queue of 0003 found the current
decisions and computed urgency on every read).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_CHUNK = 5000  # recommendations scored and updated per round


def _backfill(conn: sa.Connection) -> int:
    """Score every recommendation from its stored steps and mark each stay's current one;
    returns how many were scored."""
    from safer.store.loading import refresh_current
    from safer.store.urgency import stored_urgency

    recs = sa.table(
        "recommendations",
        sa.column("id", sa.Integer),
        sa.column("stay_id", sa.Integer),
        sa.column("step", sa.Integer),
        sa.column("urgency", sa.Float),
        sa.column("urgency_why", sa.JSON),
    )
    rows = conn.execute(
        sa.select(recs.c.id, recs.c.stay_id, recs.c.step).order_by(recs.c.stay_id, recs.c.step)
    ).all()
    update = (
        sa.update(recs)
        .where(recs.c.id == sa.bindparam("rid"))
        .values(urgency=sa.bindparam("u"), urgency_why=sa.bindparam("why"))
    )
    for i in range(0, len(rows), _CHUNK):
        part = rows[i : i + _CHUNK]
        scores = stored_urgency(conn, [(sid, step) for _, sid, step in part])
        conn.execute(
            update,
            [
                {"rid": rid, "u": u, "why": why}
                for (rid, _, _), (u, why) in zip(part, scores, strict=True)
            ],
        )
    refresh_current(conn, [sid for (sid,) in conn.execute(sa.select(recs.c.stay_id).distinct())])
    return len(rows)


def upgrade() -> None:
    with op.batch_alter_table("recommendations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("urgency", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("urgency_why", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("current", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    _backfill(op.get_bind())
    with op.batch_alter_table("recommendations", schema=None) as batch_op:
        batch_op.alter_column("urgency", existing_type=sa.Float(), nullable=False)
        batch_op.alter_column("urgency_why", existing_type=sa.JSON(), nullable=False)
        batch_op.create_index(
            "ix_recommendations_stay_step_id", ["stay_id", "step", "id"], unique=False
        )
        batch_op.create_index(
            "ix_recommendations_current_status", ["current", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("recommendations", schema=None) as batch_op:
        batch_op.drop_index("ix_recommendations_current_status")
        batch_op.drop_index("ix_recommendations_stay_step_id")
        batch_op.drop_column("current")
        batch_op.drop_column("urgency_why")
        batch_op.drop_column("urgency")
