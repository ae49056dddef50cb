"""The store load test (benchmarks/store_load.py) at a tiny size, on SQLite and PostgreSQL."""

from __future__ import annotations

from benchmarks.console import build_db
from benchmarks.store_load import CALLS, add_reviewers, pending_count, run_load


def test_concurrent_reviewers_record_every_review_once_and_keep_the_trail(db_url):
    build_db(db_url, 200, seed=0)
    users = add_reviewers(db_url, 4)
    before = pending_count(db_url)
    res = run_load(db_url, users, rounds=2, seed=0)
    assert res.errors == []
    assert all(len(res.latencies[c]) == 4 * 2 for c in CALLS[:2])  # every round got its page
    assert len(res.reviews) + res.conflicts == 4 * 2  # each submit saved or refused as a conflict
    assert len(res.reviews) >= 1
    assert res.recorded_once and res.stored_reviews == len(res.reviews)
    assert res.review_events == len(res.reviews)
    assert res.trail_ok, res.trail_problems
    assert pending_count(db_url) == before - len(res.reviews)
