"""SQLite transactions: readers never take the write lock, read-then-write units still do."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from safer.store import make_engine, read_only, upgrade


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    upgrade(engine=engine)  # as `safer db upgrade` leaves a database: in WAL mode
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE counter (n INTEGER NOT NULL)")
        conn.exec_driver_sql("INSERT INTO counter VALUES (0)")
    yield engine
    engine.dispose()


def _in_thread(fn) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except Exception as exc:  # handed to the test, which asserts on it
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_an_upgraded_file_database_uses_wal_and_a_refused_one_is_untouched(engine, tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()
    with make_engine(f"sqlite:///{empty}").connect() as conn:  # what a refused command does
        conn.exec_driver_sql("SELECT 1")
    assert empty.stat().st_size == 0 and not list(tmp_path.glob("empty.db-*"))

    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_a_read_proceeds_while_another_connection_holds_the_write_lock(engine):
    writer = Session(engine)
    writer.execute(sa.text("UPDATE counter SET n = 41"))  # BEGIN IMMEDIATE: write lock held

    def read():
        with Session(engine) as s:
            return read_only(s).execute(sa.text("SELECT n FROM counter")).scalar()

    readers = [_in_thread(read) for _ in range(4)]
    for t, _ in readers:
        t.join(timeout=5)
    try:
        assert not any(t.is_alive() for t, _ in readers), "readers waited for the writer"
        assert [out.get("value") for _, out in readers] == [0] * 4  # the committed value
    finally:
        writer.rollback()
        writer.close()


def test_read_then_write_units_still_wait_for_each_other(engine):
    first = Session(engine)
    n = first.execute(sa.text("SELECT n FROM counter")).scalar()  # BEGIN IMMEDIATE at the read

    def increment():
        with Session(engine) as s, s.begin():
            m = s.execute(sa.text("SELECT n FROM counter")).scalar()
            s.execute(sa.text("UPDATE counter SET n = :m"), {"m": m + 1})

    t, out = _in_thread(increment)
    time.sleep(0.5)
    assert t.is_alive(), "a second read-then-write unit began while the first held the lock"
    first.execute(sa.text("UPDATE counter SET n = :n"), {"n": n + 1})
    first.commit()
    first.close()
    t.join(timeout=10)
    assert "error" not in out
    with Session(engine) as s:
        assert s.execute(sa.text("SELECT n FROM counter")).scalar() == 2  # no lost update


def test_a_read_only_session_cannot_write_and_the_next_session_can(engine):
    engine.pool.dispose()
    with Session(engine) as s:
        read_only(s)
        with pytest.raises(OperationalError, match="readonly"):
            s.execute(sa.text("UPDATE counter SET n = 5"))
    with Session(engine) as s, s.begin():  # the same pooled connection, back to writable
        s.execute(sa.text("UPDATE counter SET n = 7"))
    with Session(engine) as s:
        assert s.execute(sa.text("SELECT n FROM counter")).scalar() == 7


def test_read_only_leaves_a_running_transaction_alone(engine):
    with Session(engine) as s:
        s.execute(sa.text("UPDATE counter SET n = 3"))
        read_only(s)  # already writing: stays a write transaction
        s.execute(sa.text("UPDATE counter SET n = 4"))
        s.commit()
    with Session(engine) as s:
        assert s.execute(sa.text("SELECT n FROM counter")).scalar() == 4
