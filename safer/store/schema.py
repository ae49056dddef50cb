"""ORM tables of the SAFER store (SQLAlchemy 2.x, declarative with type-annotated columns).

Schema changes go through the Alembic migrations in :mod:`safer.store.migrations`; these classes
are the models the migrations create. Times are naive UTC.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "ROLES",
    "Base",
    "User",
    "Stay",
    "Step",
    "Note",
    "ModelRun",
    "Gate",
    "Recommendation",
    "Review",
    "AuditEvent",
    "AuditHead",
    "SignInFailure",
    "DEFAULT_SOURCE",
    "utcnow",
]

ROLES = ("clinician", "auditor", "admin")
NO_GATE = ""  # calibration hash stored for recommendations made without a conformal gate
DEFAULT_SOURCE = "default"  # the source of stays loaded without naming one


def utcnow() -> datetime:
    """Current time, naive UTC (what every timestamp column stores)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of every SAFER table."""


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.CheckConstraint("role IN ('clinician', 'auditor', 'admin')", name="ck_users_role"),
    )


class Stay(Base):
    """One stored version of a stay.

    A stay is identified by its ``source`` and ``source_stay_id`` (its id there) *and* its
    ``fingerprint`` (SHA-256 of the static data, steps and notes as stored). ``stay_id`` is the
    store's key of this version (the source's id for the first stay stored under that id, a
    fresh number otherwise); steps, notes and recommendations refer to it. Corrected data is a
    new ``version``; the old one is kept with ``superseded_at`` set.
    """

    __tablename__ = "stays"

    stay_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(sa.String(64), default=DEFAULT_SOURCE)
    source_stay_id: Mapped[int] = mapped_column(sa.BigInteger)
    version: Mapped[int] = mapped_column(default=1)
    fingerprint: Mapped[str | None] = mapped_column(sa.String(64))
    superseded_at: Mapped[datetime | None]
    age: Mapped[float | None]
    gender: Mapped[int | None]
    weight_kg: Mapped[float | None]
    died: Mapped[int | None]
    n_steps: Mapped[int]
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.UniqueConstraint(
            "source", "source_stay_id", "version", name="uq_stays_source_id_version"
        ),
        sa.Index("ix_stays_source_stay", "source", "source_stay_id"),
    )


class Step(Base):
    __tablename__ = "steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    stay_id: Mapped[int] = mapped_column(sa.ForeignKey("stays.stay_id"), index=True)
    step: Mapped[int]
    charttime: Mapped[datetime]
    action: Mapped[int]
    fluid_ml: Mapped[float | None]
    vaso_ugkgmin: Mapped[float | None]
    features: Mapped[dict] = mapped_column(sa.JSON)  # the 47 state features, NaN -> null

    __table_args__ = (sa.UniqueConstraint("stay_id", "step", name="uq_steps_stay_step"),)


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    stay_id: Mapped[int] = mapped_column(sa.ForeignKey("stays.stay_id"), index=True)
    step: Mapped[int]
    note_time: Mapped[datetime]
    text: Mapped[str] = mapped_column(sa.Text)

    __table_args__ = (sa.UniqueConstraint("stay_id", "step", name="uq_notes_stay_step"),)


class ModelRun(Base):
    __tablename__ = "model_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_hash: Mapped[str] = mapped_column(sa.String(128))
    model_version: Mapped[str] = mapped_column(sa.String(64))
    split_seed: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.UniqueConstraint("model_hash", "model_version", name="uq_model_runs_hash_version"),
    )


class Gate(Base):
    __tablename__ = "gates"

    id: Mapped[int] = mapped_column(primary_key=True)
    calibration_hash: Mapped[str] = mapped_column(sa.String(128))
    alpha: Mapped[float]
    method: Mapped[str | None] = mapped_column(sa.String(32))
    report_path: Mapped[str | None] = mapped_column(sa.String(1024))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("calibration_hash", "alpha", name="uq_gates_hash_alpha"),)


class Recommendation(Base):
    __tablename__ = "recommendations"

    id: Mapped[int] = mapped_column(primary_key=True)
    stay_id: Mapped[int] = mapped_column(sa.ForeignKey("stays.stay_id"), index=True)
    step: Mapped[int]
    model_run_id: Mapped[int] = mapped_column(sa.ForeignKey("model_runs.id"))
    gate_id: Mapped[int | None] = mapped_column(sa.ForeignKey("gates.id"))
    action: Mapped[int]  # recommended action, -1 = abstained
    top_action: Mapped[int]  # the model's most likely action (shown even when abstaining)
    probabilities: Mapped[list] = mapped_column(sa.JSON)
    prediction_set: Mapped[list | None] = mapped_column(sa.JSON)
    abstained: Mapped[bool]
    low_confidence: Mapped[bool]
    flagged: Mapped[bool] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    alpha: Mapped[float | None]
    model_hash: Mapped[str] = mapped_column(sa.String(128))
    calibration_hash: Mapped[str] = mapped_column(sa.String(128), default=NO_GATE)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending", index=True)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the queue's rank: safer.store.urgency.clinical_urgency of the decision's last blocks,
    # computed once when stored (the waiting time is added when the queue is read)
    urgency: Mapped[float]
    urgency_why: Mapped[list] = mapped_column(sa.JSON)  # its reasons in words
    # the stay's current decision: newest step, then newest row, on a current stay version
    # (kept by safer.store.loading.refresh_current whenever decisions or versions are added)
    current: Mapped[bool] = mapped_column(default=False)

    review: Mapped[Review | None] = relationship(back_populates="recommendation")

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        sa.UniqueConstraint(
            "stay_id", "step", "model_hash", "calibration_hash", name="uq_recommendations_key"
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'accepted', 'overridden', 'deferred')",
            name="ck_recommendations_status",
        ),
        # finding each stay's newest decision (refresh_current), and the queue's filters
        sa.Index("ix_recommendations_stay_step_id", "stay_id", "step", "id"),
        sa.Index("ix_recommendations_current_status", "current", "status"),
    )


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    # unique: one review per recommendation; a second one is refused, never written over
    recommendation_id: Mapped[int] = mapped_column(sa.ForeignKey("recommendations.id"), unique=True)
    reviewer_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    decision: Mapped[str] = mapped_column(sa.String(16))
    chosen_action: Mapped[int | None]  # None for a deferral: no dose was chosen
    reason_code: Mapped[str] = mapped_column(sa.String(32), default="")
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    recommendation: Mapped[Recommendation] = relationship(back_populates="review")
    reviewer: Mapped[User] = relationship()

    __table_args__ = (
        sa.CheckConstraint(
            "decision IN ('accept', 'override', 'defer')", name="ck_reviews_decision"
        ),
    )


class AuditEvent(Base):
    """One append-only, hash-chained audit event (``hash = sha256(prev_hash + payload)``)."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    created_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(sa.String(64), index=True)
    action: Mapped[str] = mapped_column(sa.String(32), index=True)
    entity: Mapped[str] = mapped_column(sa.String(32))
    entity_id: Mapped[str] = mapped_column(sa.String(64))
    before: Mapped[str] = mapped_column(sa.Text)  # canonical JSON
    after: Mapped[str] = mapped_column(sa.Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    hash: Mapped[str] = mapped_column(sa.String(64), unique=True)


class AuditHead(Base):
    """The newest audit event's ``seq`` and ``hash`` (one row, ``id = 1``), written with every
    event and kept out of the audited table: the anchor that tail truncation cannot move."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int]
    hash: Mapped[str] = mapped_column(sa.String(64))
    updated_at: Mapped[datetime]


class SignInFailure(Base):
    """Consecutive failed sign-ins for one (normalised) user name, known or not."""

    __tablename__ = "sign_in_failures"

    username: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    failures: Mapped[int]
    first_failure_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
