"""Stay identity and versions, the audit trail's anchored head, sign-in throttling.

- ``stays``: ``source`` and ``source_stay_id`` (the stay's id in its source), ``version``,
  ``fingerprint`` (SHA-256 of the stored static data, steps and notes) and ``superseded_at``;
  one row per stored version, unique on (source, source_stay_id, version). ``stay_id`` stays
  the store's key of one version. Existing stays become version 1 of source ``default``, their
  fingerprint computed when first compared.
- ``audit_head``: the newest event's sequence number and hash, written with every event, kept
  out of the audited table so removing the newest events or emptying the trail is caught.
- ``sign_in_failures``: failed sign-ins per (normalised) user name, for throttling and lockout.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stays", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source", sa.String(length=64), nullable=False, server_default="default")
        )
        batch_op.add_column(sa.Column("source_stay_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("superseded_at", sa.DateTime(), nullable=True))
    op.execute("UPDATE stays SET source_stay_id = stay_id")
    with op.batch_alter_table("stays", schema=None) as batch_op:
        batch_op.alter_column("source_stay_id", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_unique_constraint(
            "uq_stays_source_id_version", ["source", "source_stay_id", "version"]
        )
        batch_op.create_index("ix_stays_source_stay", ["source", "source_stay_id"], unique=False)

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(  # anchor an existing trail at its newest event
        "INSERT INTO audit_head (id, seq, hash, updated_at) "
        "SELECT 1, seq, hash, created_at FROM audit_events "
        "WHERE seq = (SELECT MAX(seq) FROM audit_events)"
    )
    op.create_table(
        "sign_in_failures",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_failure_at", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("username"),
    )


def downgrade() -> None:
    op.drop_table("sign_in_failures")
    op.drop_table("audit_head")
    with op.batch_alter_table("stays", schema=None) as batch_op:
        batch_op.drop_index("ix_stays_source_stay")
        batch_op.drop_constraint("uq_stays_source_id_version", type_="unique")
        batch_op.drop_column("superseded_at")
        batch_op.drop_column("fingerprint")
        batch_op.drop_column("version")
        batch_op.drop_column("source_stay_id")
        batch_op.drop_column("source")
