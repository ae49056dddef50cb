"""Alembic environment: runs migrations on the connection handed over by safer.store.db."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from safer.store.schema import Base


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("run migrations through `safer db upgrade` (it sets the database)")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _run(conn)


_main()
