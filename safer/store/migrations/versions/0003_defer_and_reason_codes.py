"""Reviews that defer, and coded review reasons.

- ``reviews.decision`` may be ``defer`` (the clinician keeps usual care / the recommendation
  does not apply); ``reviews.chosen_action`` is NULL for a deferral (no dose was chosen).
- ``reviews.reason_code``: one of the coded reasons (``safer.store.reviews.REASON_CODES``),
  next to the free text in ``reason``; existing reviews get ``""``.
- ``recommendations.status`` may be ``deferred``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_OLD_DECISIONS = "decision IN ('accept', 'override')"
_NEW_DECISIONS = "decision IN ('accept', 'override', 'defer')"
_OLD_STATUS = "status IN ('pending', 'accepted', 'overridden')"
_NEW_STATUS = "status IN ('pending', 'accepted', 'overridden', 'deferred')"


def upgrade() -> None:
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reason_code", sa.String(length=32), nullable=False, server_default="")
        )
        batch_op.alter_column("chosen_action", existing_type=sa.Integer(), nullable=True)
        batch_op.drop_constraint("ck_reviews_decision", type_="check")
        batch_op.create_check_constraint("ck_reviews_decision", _NEW_DECISIONS)
    with op.batch_alter_table("recommendations", schema=None) as batch_op:
        batch_op.drop_constraint("ck_recommendations_status", type_="check")
        batch_op.create_check_constraint("ck_recommendations_status", _NEW_STATUS)


def downgrade() -> None:
    op.execute("DELETE FROM reviews WHERE decision = 'defer'")
    op.execute("UPDATE recommendations SET status = 'pending' WHERE status = 'deferred'")
    with op.batch_alter_table("recommendations", schema=None) as batch_op:
        batch_op.drop_constraint("ck_recommendations_status", type_="check")
        batch_op.create_check_constraint("ck_recommendations_status", _OLD_STATUS)
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_constraint("ck_reviews_decision", type_="check")
        batch_op.create_check_constraint("ck_reviews_decision", _OLD_DECISIONS)
        batch_op.alter_column("chosen_action", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("reason_code")
