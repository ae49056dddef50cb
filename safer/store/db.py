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

import logging
import os
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DatabaseError, OperationalError
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
    "read_only",
    "READ_ONLY",
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


READ_ONLY = "safer_read_only"
"""Connection execution option marking a read-only unit of work (see :func:`read_only`)."""


def _sqlite_transactions(engine: Engine) -> None:
    # pysqlite starts transactions lazily, so read-then-write units race and fail with
    # "database is locked"; take the write lock at BEGIN instead (SQLAlchemy's pysqlite recipe).
    # Read-only units (see read_only) begin deferred under PRAGMA query_only, so they take no
    # write lock and cannot write; in WAL mode they read a snapshot beside the one writer.
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("PRAGMA query_only=ON")
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("PRAGMA query_only=OFF")
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def _in_memory(engine: Engine) -> bool:
    return engine.url.database in (None, "", ":memory:") or "mode=memory" in str(engine.url)


def read_only(session: Session) -> Session:
    """Declare ``session``'s coming transaction read-only; returns ``session``.

    On SQLite the transaction then begins deferred (no write lock, so readers do not queue
    behind each other or behind a writer) and any write in it fails ("attempt to write a
    readonly database"); every other transaction keeps ``BEGIN IMMEDIATE``. On other databases
    nothing changes. A session already inside a transaction is left as it is. Call it first in
    functions that only read, such as the queue and the decision view.

    Examples
    --------
    >>> import sqlalchemy as sa
    >>> engine = make_engine("sqlite://")
    >>> with Session(engine) as s:
    ...     read_only(s).execute(sa.text("SELECT 1")).scalar()
    1
    """
    if not session.in_transaction():
        session.connection(execution_options={READ_ONLY: True})
    return session


class _NoRowsInLogs(logging.Filter):
    """Drop SQLAlchemy's DEBUG records: they print result rows (note text, password hashes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_ROW_FILTER = _NoRowsInLogs()


def _quiet_rows() -> None:
    for name in ("sqlalchemy.engine", "sqlalchemy.engine.Engine", "sqlalchemy.pool"):
        logger = logging.getLogger(name)
        if _ROW_FILTER not in logger.filters:
            logger.addFilter(_ROW_FILTER)


def make_engine(url: str | None = None) -> Engine:
    """Create an engine for ``url`` (see :func:`database_url`); nothing is connected yet.

    SQL parameters are hidden from logs and error messages, and SQLAlchemy's DEBUG records
    (which print result rows) are dropped, so patient text and password hashes never reach a
    log at any level.
    """
    _quiet_rows()
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
        _sqlite_transactions(engine)
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


def _not_a_database(url: str, exc: Exception) -> DatabaseUnavailableError:
    return DatabaseUnavailableError(
        f"{safe_url(url)} is not a SAFER database ({type(exc).__name__}: "
        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}); check {ENV_VAR} "
        "or --db, or create one with `safer db upgrade` at a new path. Nothing was written."
    )


def _newer(url: str, revision: str) -> StaleSchemaError:
    return StaleSchemaError(
        f"the database at {safe_url(url)} is at migration {revision}, which this SAFER does not "
        f"know (its newest is {head_revision()}): it was upgraded by a newer SAFER; upgrade SAFER "
        "to use it"
    )


def upgrade(url: str | None = None, *, engine: Engine | None = None) -> str:
    """Apply every pending migration; returns the revision the database is now at.

    On SQLite, foreign-key enforcement is off while migrations rebuild tables and the keys are
    checked before the migration commits.
    """
    engine = engine or make_engine(url)
    where = engine.url.render_as_string(hide_password=False)
    try:
        with engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:  # PRAGMA foreign_keys is ignored inside a transaction: set it before
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():
                    command.upgrade(_alembic_config(conn), "head")
                    if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                        raise StaleSchemaError(
                            f"migrating {safe_url(where)} would break foreign keys; restore "
                            "the backup and report this"
                        )
            finally:
                if sqlite:
                    conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
            if sqlite and not _in_memory(engine):
                # WAL is stored in the file: readers then read a snapshot beside the one writer.
                # Set here, not on connect, so a command refused on a foreign or empty file
                # leaves it untouched.
                conn.connection.driver_connection.execute("PRAGMA journal_mode=WAL")
    except CommandError as exc:
        revision = current_revision(engine=engine)
        if revision is not None and _is_newer(revision):
            raise _newer(where, revision) from exc
        raise StaleSchemaError(
            f"cannot migrate {safe_url(where)}: it is at migration {revision}, which this SAFER "
            f"does not know ({exc}); restore a backup made with this SAFER's migrations"
        ) from exc
    except OperationalError as exc:
        raise _unavailable(where, exc) from exc
    except DatabaseError as exc:
        raise _not_a_database(where, exc) from exc
    return current_revision(engine=engine) or ""


def _is_newer(revision: str) -> bool:
    """Whether ``revision`` is unknown here and numbered after this SAFER's newest migration
    (SAFER numbers its migrations 0001, 0002, ...)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    try:
        if ScriptDirectory.from_config(cfg).get_revision(revision) is not None:
            return False
    except CommandError:
        pass
    head = head_revision()
    return revision.isdigit() and head.isdigit() and int(revision) > int(head)


def current_revision(url: str | None = None, *, engine: Engine | None = None) -> str | None:
    """The migration the database is at, or ``None`` for an empty database."""
    engine = engine or make_engine(url)
    where = engine.url.render_as_string(hide_password=False)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise _unavailable(where, exc) from exc
    except DatabaseError as exc:
        raise _not_a_database(where, exc) from exc


def check_schema(engine: Engine) -> None:
    """Raise :class:`StaleSchemaError` unless the database is at the newest migration."""
    current = current_revision(engine=engine)
    head = head_revision()
    where = safe_url(engine.url.render_as_string(hide_password=False))
    if current is None:
        raise StaleSchemaError(
            f"the database at {where} has no SAFER schema; run `safer db upgrade` first"
        )
    if current != head and _is_newer(current):
        raise _newer(where, current)
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
