"""Engines, sessions and migrations: where the store lives and whether its schema is current.

The database is ``sqlite:///safer.db`` unless ``SAFER_DB_URL`` (or an explicit URL) says
otherwise. :func:`upgrade` applies the Alembic migrations shipped in
:mod:`safer.store.migrations`; :func:`connect` refuses a database whose schema is not at the
newest migration, with a message that says to run ``safer db upgrade``.

Examples
--------
>>> from safer.store import connect, upgrade
>>> url = "sqlite://"  # in-memory; use a file or PostgreSQL URL in practice
>>> # upgrade(url); Session = connect(url); with Session() as s: ...
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from safer.store.errors import DatabaseUnavailableError, StaleSchemaError

__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "database_url",
    "safe_url",
    "make_engine",
    "upgrade",
    "head_revision",
    "current_revision",
    "check_schema",
    "connect",
]

DEFAULT_URL = "sqlite:///safer.db"
ENV_VAR = "SAFER_DB_URL"
_MIGRATIONS = Path(__file__).parent / "migrations"


def database_url(url: str | None = None) -> str:
    """The URL to use: ``url`` if given, else ``$SAFER_DB_URL``, else ``sqlite:///safer.db``."""
    return url or os.environ.get(ENV_VAR) or DEFAULT_URL


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparseable URL is shown as-is: it holds no usable password
        return url


def _sqlite_begin_immediate(engine: Engine) -> None:
    # pysqlite starts transactions lazily, so read-then-write units race and fail with
    # "database is locked"; take the write lock at BEGIN instead (SQLAlchemy's pysqlite recipe).
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str | None = None) -> Engine:
    """Create an engine for ``url`` (see :func:`database_url`); nothing is connected yet.

    SQL parameters are hidden from logs and error messages, so patient text never reaches them.
    """
    url = database_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise DatabaseUnavailableError(
            f"{url!r} is not a database URL; use e.g. sqlite:///safer.db or "
            "postgresql+psycopg2://user:password@host:5432/dbname"
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(parsed, connect_args={"timeout": 30}, hide_parameters=True)
        _sqlite_begin_immediate(engine)
        return engine
    return sa.create_engine(parsed, pool_pre_ping=True, hide_parameters=True)


def _alembic_config(connection: sa.Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest migration shipped with this version of SAFER."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise StaleSchemaError("no migrations found in safer.store.migrations; reinstall SAFER")
    return head


def _unavailable(url: str, exc: Exception) -> DatabaseUnavailableError:
    return DatabaseUnavailableError(
        f"cannot reach the database at {safe_url(url)} ({type(exc).__name__}: "
        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}); "
        f"is it running, and is {ENV_VAR} right? Nothing was written."
    )


def upgrade(url: str | None = None, *, engine: Engine | None = None) -> str:
    """Apply every pending migration; returns the revision the database is now at."""
    engine = engine or make_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "head")
    except OperationalError as exc:
        raise _unavailable(str(engine.url), exc) from exc
    return current_revision(engine=engine) or ""


def current_revision(url: str | None = None, *, engine: Engine | None = None) -> str | None:
    """The migration the database is at, or ``None`` for an empty database."""
    engine = engine or make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise _unavailable(engine.url.render_as_string(hide_password=False), exc) from exc


def check_schema(engine: Engine) -> None:
    """Raise :class:`StaleSchemaError` unless the database is at the newest migration."""
    current = current_revision(engine=engine)
    head = head_revision()
    where = safe_url(engine.url.render_as_string(hide_password=False))
    if current is None:
        raise StaleSchemaError(
            f"the database at {where} has no SAFER schema; run `safer db upgrade` first"
        )
    if current != head:
        raise StaleSchemaError(
            f"the database at {where} is at migration {current}, this SAFER needs {head}; "
            "run `safer db upgrade` (back up the database first)"
        )


def connect(url: str | None = None, *, check: bool = True) -> sessionmaker[Session]:
    """A session factory on the configured database, after checking its schema is current.

    Raises
    ------
    DatabaseUnavailableError
        The database cannot be reached.
    StaleSchemaError
        The schema is missing or not at the newest migration (run ``safer db upgrade``).
    """
    engine = make_engine(url)
    if check:
        check_schema(engine)
    return sessionmaker(engine, expire_on_commit=False)
