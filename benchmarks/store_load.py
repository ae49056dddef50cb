"""Store load test: concurrent reviewers doing what a clinician does in the console.

Fills a database with ``--pending`` pending decisions (:func:`console.build_db`: a simulated
cohort, one decision per step), adds ``--reviewers`` clinicians, then runs them at the same
time, each in its own thread with its own engine (its own connection), ``--rounds`` times:

1. **queue page**: :func:`safer.review.patient_queue` (page 1, 20 patients), the call the
   queue page makes;
2. **open decision**: :func:`safer.store.decision_detail` on a patient picked at random from
   that page, the call the decision page makes;
3. **submit review**: :func:`safer.store.submit_review` with the version the page showed —
   accept, choose a dose (override) or defer, in turn.

Two reviewers who pick the same patient are handled as the store promises (one review per
recommendation; the second gets :class:`~safer.store.ReviewConflictError` and nothing is
written): counted as *conflicts*. Any other exception is an *error*. At the end every
acknowledged review must be stored exactly once, as submitted, and the audit trail must verify.

Threads, not processes: the console is one Streamlit server whose sessions are threads, so
this is how one server sees 20 clinicians. Saves each run's raw results (every call's latency,
the outcome checks, the command, machine, date and commit) as one JSON file in
``docs/benchmarks/store_load_runs/`` and builds ``docs/benchmarks/store_load.md`` from *all* saved
runs, so a rerun adds to the page (``--page-only`` rebuilds it without running).

Run::

    PYTHONPATH=. python benchmarks/store_load.py --pending 50000 --reviewers 20 --rounds 10
    PYTHONPATH=. python benchmarks/store_load.py --db sqlite \\
        --db postgresql+psycopg2://USER:PW@127.0.0.1:5432/DB      # both, one page
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import load_runs, save_run, write_page  # noqa: E402
from console import build_db  # noqa: E402

from safer.review import patient_queue  # noqa: E402
from safer.store import (  # noqa: E402
    ReviewConflictError,
    add_user,
    connect,
    decision_detail,
    safe_url,
    submit_review,
    verify_trail,
)
from safer.store.schema import AuditEvent, Recommendation, Review, User  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "docs" / "benchmarks" / "store_load_runs"  # one JSON file of raw results per run
CALLS = ("queue page", "open decision", "submit review")
DECISIONS = ("accept", "override", "defer")
PASSWORD = "load-reviewer-pw"


@dataclass
class LoadResult:
    """What :func:`run_load` measured and checked."""

    latencies: dict[str, list[float]]  # call -> seconds, every call
    reviews: list[tuple[int, str, str]]  # acknowledged (recommendation id, reviewer, decision)
    conflicts: int  # reviews refused because another reviewer was first (as promised)
    errors: list[str]  # anything else: must stay empty
    wall_s: float
    stored_reviews: int  # reviews in the database after the run
    recorded_once: bool  # every acknowledged review stored exactly once, as submitted
    review_events: int  # "review" events in the audit trail
    trail_ok: bool
    trail_problems: list[str] = field(default_factory=list)
    load_avg: list[float] = field(default_factory=list)  # machine's 1-min load, start and end


def add_reviewers(url: str, n: int) -> list:
    """``n`` clinicians ``rev00..``; returns the signed-in users."""
    Session = connect(url)
    with Session() as s, s.begin():
        users = [add_user(s, f"rev{k:02d}", PASSWORD, role="clinician") for k in range(n)]
    Session.kw["bind"].dispose()
    return users


def run_load(url: str, users: list, rounds: int, seed: int = 0, page_size: int = 20) -> LoadResult:
    """Run one thread per user, ``rounds`` clinician rounds each, on a filled database."""
    latencies: dict[str, list[float]] = {c: [] for c in CALLS}
    reviews: list[tuple[int, str, str]] = []
    errors: list[str] = []
    conflicts = [0]
    lock = threading.Lock()
    start = threading.Barrier(len(users))

    def timed(call: str, fn, *args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            dt = time.perf_counter() - t
            with lock:
                latencies[call].append(dt)

    def reviewer(k: int) -> None:
        user = users[k]
        rng = np.random.default_rng([seed, k])
        Session = connect(url)  # its own engine: its own connection
        start.wait()
        try:
            for r in range(rounds):
                try:
                    with Session() as s:
                        page = timed("queue page", patient_queue, s, user, page_size=page_size)
                    if not page.rows:
                        return
                    rec_id = page.rows[int(rng.integers(len(page.rows)))]["id"]
                    with Session() as s:
                        detail = timed("open decision", decision_detail, s, user, rec_id)
                    decision = DECISIONS[(k + r) % 3]
                    if decision == "accept" and detail["action"] < 0:
                        decision = "override"  # nothing to accept: the gate deferred
                    chosen = int(rng.integers(25)) if decision == "override" else None
                    with Session() as s:
                        timed("submit review", submit_review, s, user, rec_id, decision,
                              chosen_action=chosen, reason_code="uncertain",
                              expected_version=detail["version"])  # fmt: skip
                    with lock:
                        reviews.append((rec_id, user.username, decision))
                except ReviewConflictError:
                    with lock:
                        conflicts[0] += 1
                except Exception as exc:  # reported on the page, never swallowed
                    with lock:
                        first = (str(exc).strip().splitlines() or [""])[0]
                        errors.append(f"{user.username} round {r}: {type(exc).__name__}: {first}")
        finally:
            Session.kw["bind"].dispose()

    threads = [threading.Thread(target=reviewer, args=(k,)) for k in range(len(users))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0

    Session = connect(url)
    with Session() as s:
        stored = {
            rec: (who, decision)
            for rec, who, decision in s.execute(
                sa.select(Review.recommendation_id, User.username, Review.decision).join(
                    User, User.id == Review.reviewer_id
                )
            )
        }
        n_stored = s.scalar(sa.select(sa.func.count()).select_from(Review))
        events = s.scalar(
            sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.action == "review")
        )
        report = verify_trail(s)
    Session.kw["bind"].dispose()
    acked = Counter(rec for rec, _, _ in reviews)
    once = (
        all(c == 1 for c in acked.values())
        and n_stored == len(reviews)
        and all(stored.get(rec) == (who, decision) for rec, who, decision in reviews)
    )
    return LoadResult(latencies, reviews, conflicts[0], errors, wall, n_stored, once, events,
                      report.ok, list(report.problems))  # fmt: skip


def pending_count(url: str) -> int:
    Session = connect(url)
    with Session() as s:
        n = s.scalar(
            sa.select(sa.func.count())
            .select_from(Recommendation)
            .where(Recommendation.status == "pending")
        )
    Session.kw["bind"].dispose()
    return int(n)


def queue_alone(url: str, user, n: int = 3) -> list[float]:
    """Seconds of ``n`` queue-page calls with nobody else on the database (the unloaded cost)."""
    Session = connect(url)
    out = []
    for _ in range(n):
        with Session() as s:
            t = time.perf_counter()
            patient_queue(s, user, page_size=20)
            out.append(time.perf_counter() - t)
    Session.kw["bind"].dispose()
    return out


def measure(url: str | None, args) -> tuple[str, int, float, LoadResult]:
    """Fill one database (``None``: a SQLite file in a temp dir) and run the load on it."""
    work = None
    if url is None:
        work = Path(tempfile.mkdtemp(prefix="safer-store-load-"))
        url = f"sqlite:///{work / 'load.db'}"
    parsed = sa.engine.make_url(url)
    engine = parsed.get_backend_name()
    if engine != "sqlite" and parsed.host not in ("127.0.0.1", "localhost"):
        sys.exit("the load test runs against 127.0.0.1 only; give a URL on 127.0.0.1")
    t = time.perf_counter()
    build_db(url, args.pending, args.seed)
    users = add_reviewers(url, args.reviewers)
    pending = pending_count(url)
    fill_s = time.perf_counter() - t
    print(f"filled {safe_url(url)}: {pending} pending decisions in {fill_s:.0f} s", flush=True)
    load_start = os.getloadavg()[0]  # the machine is shared: say how busy it was
    alone = queue_alone(url, users[0])
    res = run_load(url, users, args.rounds, args.seed)
    res.load_avg = [round(load_start, 1), round(os.getloadavg()[0], 1)]
    res.latencies = {"queue page, one reviewer alone": alone, **res.latencies}
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
    return engine, pending, fill_s, res


def summary(res: LoadResult, engine: str, pending: int, fill_s: float) -> dict:
    """One database's raw results as saved in a run file (latencies in ms, every call)."""
    calls = {}
    for call, values in res.latencies.items():
        v = np.asarray(values, dtype=float) * 1000
        if len(v):
            calls[call] = {"calls": len(v), "p50_ms": float(np.median(v)),
                           "p95_ms": float(np.percentile(v, 95)), "max_ms": float(v.max()),
                           "latencies_ms": [round(float(x), 2) for x in v]}  # fmt: skip
    return {
        "engine": engine,
        "pending": pending,
        "fill_s": round(fill_s, 1),
        "calls": calls,
        "wall_s": round(res.wall_s, 2),
        "store_calls": sum(len(res.latencies[c]) for c in CALLS),
        "reviews": len(res.reviews),
        "conflicts": res.conflicts,
        "errors": len(res.errors),
        "error_kinds": dict(Counter(e.split(": ", 1)[1] for e in res.errors).most_common()),
        "stored_reviews": res.stored_reviews,
        "recorded_once": res.recorded_once,
        "review_events": res.review_events,
        "trail_ok": res.trail_ok,
        "trail_problems": res.trail_problems[:3],
        "load_avg_1min": res.load_avg,
    }


def _run_tables(run: dict) -> list[str]:
    """The latency and outcome tables of one saved run."""
    lines = [
        "| database | store call | calls | p50 (ms) | p95 (ms) | max (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for r in run["results"]:
        for call, c in r["calls"].items():
            lines.append(f"| {r['engine']} | {call} | {c['calls']} | {c['p50_ms']:.0f} | "
                         f"{c['p95_ms']:.0f} | {c['max_ms']:.0f} |")  # fmt: skip
    lines += [
        "",
        "| database | wall (s) | store calls/s | reviews saved | reviews/s | conflicts | errors "
        "| stored once, as submitted | audit trail |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in run["results"]:
        lines.append(
            f"| {r['engine']} | {r['wall_s']:.1f} | {r['store_calls'] / r['wall_s']:.1f} | "
            f"{r['reviews']} | {r['reviews'] / r['wall_s']:.2f} | {r['conflicts']} | "
            f"{r['errors']} | {'yes' if r['recorded_once'] else 'NO'} ({r['stored_reviews']} "
            f"stored, {r['review_events']} review events) | "
            f"{'verifies' if r['trail_ok'] else 'FAILS: ' + '; '.join(r['trail_problems'])} |"
        )
    for r in run["results"]:
        if r["error_kinds"]:
            lines += ["", f"Errors on {r['engine']}, by kind:", "",
                      *[f"- {n} x {kind}" for kind, n in r["error_kinds"].items()]]  # fmt: skip
    return lines


def _describe(run: dict) -> str:
    p = run["provenance"]
    what = (
        f"{run['reviewers']} reviewers (threads, one engine each), {run['rounds']} rounds "
        "each of: queue page (20 patients) -> open a patient picked at random on it -> "
        "accept / choose a dose / defer (in turn). Pending decisions at the start: "
    )
    what += ", ".join(f"{r['engine']} {r['pending']} (filled in {r['fill_s']:.0f} s)"
                      for r in run["results"]) + "."  # fmt: skip
    lines = [f"- command: `{p['command']}`", f"- machine: {p['machine']}",
             f"- date: {p['date']}", f"- versions: {p['versions']}",
             f"- commit: {p['commit']}"]  # fmt: skip
    if run.get("note"):
        lines.append(f"- note: {run['note']}")
    loads = [f"{r['engine']} {r['load_avg_1min'][0]} -> {r['load_avg_1min'][1]}"
             for r in run["results"] if r.get("load_avg_1min")]  # fmt: skip
    if loads:
        lines.append("- machine load (1-min average, start -> end of the load phase; 2 cores "
                     "shared with other work): " + ", ".join(loads))  # fmt: skip
    return "\n".join([*lines, "", what])


def history(runs: list[dict]) -> list[str]:
    """One row per (run, database): the figures to compare across runs, newest first."""
    lines = [
        "| date | commit | database | pending | queue alone p50 (ms) | queue p50 (ms) | "
        "queue p95 (ms) | open p95 (ms) | submit p95 (ms) | conflicts | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ms(r: dict, call: str, key: str) -> str:
        return f"{r['calls'][call][key]:.0f}" if call in r["calls"] else "-"

    for run in reversed(runs):
        for r in run["results"]:
            lines.append(
                f"| {run['provenance']['date']} | {run['provenance']['commit']} | {r['engine']} "
                f"| {r['pending']} | {ms(r, 'queue page, one reviewer alone', 'p50_ms')} | "
                f"{ms(r, 'queue page', 'p50_ms')} | {ms(r, 'queue page', 'p95_ms')} | "
                f"{ms(r, 'open decision', 'p95_ms')} | {ms(r, 'submit review', 'p95_ms')} | "
                f"{r['conflicts']} | {r['errors']} |"
            )
    return lines


def build_page(runs: list[dict], out: str | Path) -> None:
    """Write the page from every saved run: the newest in full, then all runs side by side,
    then each earlier run in full (a rerun adds to the page, it never drops a row)."""
    title = "# Store load: concurrent reviewers over the review API"
    if not runs:
        write_page(out, [title, "", "No saved runs yet (run benchmarks/store_load.py)."])
        return
    newest, *earlier = reversed(runs)
    lines = [title, "", "## Newest run", "", _describe(newest), "", *_run_tables(newest), "",
             "## Every saved run, newest first", "", *history(runs)]  # fmt: skip
    for run in earlier:
        lines += ["", f"## Run of {run['provenance']['date']}", "", _describe(run), "",
                  *_run_tables(run)]  # fmt: skip
    write_page(out, lines,
               "Raw results of every run (each call's latency) are in "
               f"`docs/benchmarks/{Path(RUNS).name}/`, one JSON file per run; this page is "
               "built from them (`--page-only` rebuilds it without running). Conflicts are "
               "reviews the store refused as promised (another reviewer saved one for that "
               "decision first; nothing written), not errors. The machine is shared (2 cores): "
               "figures vary between runs.")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--db",
        action="append",
        help="URL of an empty database on 127.0.0.1, or 'sqlite' for a SQLite file in a temp "
        "dir (the default); repeat to measure several in one run",
    )
    ap.add_argument("--pending", type=int, default=50_000)
    ap.add_argument("--reviewers", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--note", default="", help="what this run measures (shown on the page)")
    ap.add_argument("--runs", default=str(RUNS), help="folder of the saved runs (JSON)")
    ap.add_argument("--page-only", action="store_true",
                    help="only rebuild the page from the saved runs")  # fmt: skip
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "store_load.md"))
    args = ap.parse_args()
    if not args.page_only:
        results = []
        for u in args.db or ["sqlite"]:
            engine, pending, fill_s, res = measure(None if u == "sqlite" else u, args)
            results.append(summary(res, engine, pending, fill_s))
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = save_run(args.runs, stamp, {"reviewers": args.reviewers, "rounds": args.rounds,
                                           "seed": args.seed, "note": args.note,
                                           "results": results})  # fmt: skip
        print(f"saved {path}", flush=True)
    build_page(load_runs(args.runs), args.out)


if __name__ == "__main__":
    main()
