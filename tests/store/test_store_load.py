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


def test_each_run_is_saved_and_the_page_keeps_every_saved_run(tmp_path):
    """A second run adds to the page: the first run's rows (and its raw latencies) stay."""
    import json

    from benchmarks._report import load_runs, save_run
    from benchmarks.store_load import build_page, summary

    url = f"sqlite:///{tmp_path / 'load.db'}"
    build_db(url, 60, seed=0)
    users = add_reviewers(url, 2)
    for k, stamp in enumerate(("20260101T000000Z", "20260102T000000Z")):
        res = run_load(url, users, rounds=1, seed=k)
        record = {"reviewers": 2, "rounds": 1, "seed": k, "note": f"run {k}",
                  "results": [summary(res, "sqlite", pending_count(url), 1.0)]}  # fmt: skip
        save_run(tmp_path / "runs", stamp, record)
    runs = load_runs(tmp_path / "runs")
    assert [r["note"] for r in runs] == ["run 0", "run 1"]  # oldest first
    saved = json.loads((tmp_path / "runs" / "20260101T000000Z.json").read_text())
    queue = saved["results"][0]["calls"]["queue page"]
    assert len(queue["latencies_ms"]) == queue["calls"] == 2  # every call's latency is kept
    assert saved["provenance"]["command"] and saved["provenance"]["commit"]
    build_page(runs, tmp_path / "page.md")
    page = (tmp_path / "page.md").read_text()
    assert "## Newest run" in page and "- note: run 1" in page
    assert "## Run of " in page and "- note: run 0" in page
    history = page.split("## Every saved run, newest first")[1].split("## Run of")[0]
    assert history.count("| sqlite |") == 2  # one row per saved run


def test_the_committed_page_is_built_from_the_committed_runs(tmp_path):
    """docs/benchmarks/store_load.md is exactly what build_page makes of store_load_runs/: no
    row on it is kept by hand."""
    from benchmarks._report import load_runs
    from benchmarks.store_load import ROOT, RUNS, build_page

    build_page(load_runs(RUNS), tmp_path / "page.md")
    committed = (ROOT / "docs" / "benchmarks" / "store_load.md").read_text()
    assert (tmp_path / "page.md").read_text() == committed
