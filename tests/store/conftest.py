"""Store fixtures: a fresh, migrated database per test on SQLite and (if configured) PostgreSQL.

PostgreSQL runs when ``SAFER_TEST_PG_URL`` is set; each test gets its own schema (dropped after),
so tests never see each other's rows even on one shared database.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from safer.decisions import most_likely
from safer.store import add_decisions, add_user, connect, load_cohort, upgrade

PG_ENV = "SAFER_TEST_PG_URL"


def pg_schema_url(base: str):
    """Create a unique schema on ``base``; return (url using it, cleanup function)."""
    schema = f"safer_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return url.render_as_string(hide_password=False), drop


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """URL of an empty database (not yet migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'safer.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql+psycopg2://...)")
    url, drop = pg_schema_url(base)
    yield url
    drop()


@pytest.fixture
def Session(db_url):  # noqa: N802 - a sessionmaker, named as SQLAlchemy does
    """A session factory on a freshly migrated database."""
    upgrade(db_url)
    factory = connect(db_url)
    yield factory
    factory.kw["bind"].dispose()


@pytest.fixture(scope="session")
def tiny_cohort(small_cohort):
    """The first 12 stays of the shared small cohort."""
    ids = np.sort(small_cohort["stay_id"].unique())[:12]
    return small_cohort[small_cohort["stay_id"].isin(ids)].reset_index(drop=True)


def make_proba(n: int, seed: int = 0) -> np.ndarray:
    """Peaked random probabilities over 25 actions: about half below 0.5 at the top."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(25, 0.15), size=n)


@pytest.fixture
def loaded(Session, tiny_cohort):
    """Database with users ana (clinician), bo (clinician), cy (auditor) and recommendations."""
    proba = make_proba(len(tiny_cohort))
    with Session() as s, s.begin():
        users = {
            "ana": add_user(s, "ana", "ana-password", role="clinician"),
            "bo": add_user(s, "bo", "bo-password", role="clinician"),
            "cy": add_user(s, "cy", "cy-password", role="auditor"),
            "di": add_user(s, "di", "di-password", role="admin"),
        }
        load_cohort(s, tiny_cohort)
        add_decisions(s, tiny_cohort["stay_id"], tiny_cohort["step"], proba,
                      most_likely(proba, "model-abc"), model_version="0.1")  # fmt: skip
    return Session, users, proba
