"""Console speed in a real browser: sign-in -> queue and warm page transitions (p50 / p95).

Builds a database with at least ``--pending`` pending decisions (a simulated cohort, one
decision per step, random probabilities: the pages' speed does not depend on the model),
serves the console with Streamlit on 127.0.0.1 and drives Debian's headless Chromium through
Playwright:

* **sign-in -> queue**: from the "Sign in" click to the queue's table on screen and the app
  idle (Streamlit's running indicator gone), in a fresh browser context each time;
* **warm transitions**: after a first visit of each page, the time from a click to the target
  page rendered and idle: queue -> decision ("Review the most urgent patient") and decision ->
  queue (the sidebar link), ``--rounds`` times each.

Writes docs/benchmarks/console.md. The target (issue 16): warm transitions p95 <= 1 s and
sign-in -> queue <= 2 s with 2,000 pending decisions.

Run::

    PYTHONPATH=. python benchmarks/console.py --pending 2000 --rounds 15 --sign-ins 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import header, write_page  # noqa: E402

from safer.cli.db import serving_console  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip
IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
PASSWORD = "bench-clinician-pw"


def build_db(url: str, pending: int, seed: int) -> int:
    """A migrated database with a clinician and >= ``pending`` pending decisions."""
    from safer.cohorts import simulate_cohort
    from safer.decisions import most_likely
    from safer.store import add_decisions, add_user, connect, load_cohort, upgrade

    stays = max(10, pending // 8)
    cohort = simulate_cohort(stays, seed=seed, progress=False)
    while len(cohort) < pending:
        stays = int(stays * 1.3) + 1
        cohort = simulate_cohort(stays, seed=seed, progress=False)
    upgrade(url)
    Session = connect(url)
    proba = np.random.default_rng(seed).dirichlet(np.full(25, 0.15), size=len(cohort))
    with Session() as s, s.begin():
        add_user(s, "bench", PASSWORD, role="clinician")
        load_cohort(s, cohort)
        add_decisions(s, cohort["stay_id"], cohort["step"], proba,
                      most_likely(proba, "bench-model"), model_version="bench")  # fmt: skip
    Session.kw["bind"].dispose()
    return len(cohort)


def _idle(page) -> None:
    page.wait_for_timeout(50)  # let the click reach the server before testing for idle
    page.wait_for_function(IDLE)


def _sign_in(page, base: str) -> float:
    page.goto(base)
    page.get_by_label("User name").fill("bench")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    t = time.perf_counter()
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Review queue").wait_for()
    page.get_by_role("link", name="Review the most urgent patient").wait_for()
    _idle(page)
    return time.perf_counter() - t


def measure(base: str, chromium: str, rounds: int, sign_ins: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {"sign-in -> queue": [], "queue -> decision": [],
                                   "decision -> queue": []}  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
        for _ in range(sign_ins):
            ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
            page = ctx.new_page()
            page.set_default_timeout(60_000)
            out["sign-in -> queue"].append(_sign_in(page, base))
            ctx.close()
        ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        _sign_in(page, base)
        for i in range(rounds + 1):  # the first round warms both pages and is not counted
            t = time.perf_counter()
            page.get_by_role("link", name="Review the most urgent patient").click()
            page.get_by_role("heading", name="Review", exact=True).wait_for()
            _idle(page)
            dt_decision = time.perf_counter() - t
            t = time.perf_counter()
            page.get_by_role("link", name="Review queue").click()
            page.get_by_role("link", name="Review the most urgent patient").wait_for()
            _idle(page)
            dt_queue = time.perf_counter() - t
            if i:
                out["queue -> decision"].append(dt_decision)
                out["decision -> queue"].append(dt_queue)
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pending", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--sign-ins", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "console.md"))
    args = ap.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("needs Debian's chromium (apt-get install chromium) and playwright")
    work = Path(tempfile.mkdtemp(prefix="safer-console-bench-"))
    url = f"sqlite:///{work / 'console.db'}"
    n = build_db(url, args.pending, args.seed)
    env = dict(os.environ, SAFER_DB_URL=url, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    for var in ("SAFER_MODEL_DIR", "SAFER_GATE_PATH", "SAFER_TSEDIT_DIR"):
        env.pop(var, None)
    with serving_console(ROOT / "clinical_ui" / "app.py", env) as base:
        times = measure(base, chromium, args.rounds, args.sign_ins)
    target = {"sign-in -> queue": 2.0, "queue -> decision": 1.0, "decision -> queue": 1.0}
    lines = [
        header(
            "Console speed in a real browser (Chromium via Playwright)", "streamlit", "playwright"
        ),  # fmt: skip
        "",
        f"Database: SQLite, {n} pending decisions ({n} steps of a simulated cohort, one "
        "decision each). Times from the click to the page rendered and Streamlit idle; warm "
        "transitions after one untimed round.",
        "",
        "| measure | n | p50 (s) | p95 (s) | max (s) | target (s) | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, values in times.items():
        v = np.asarray(values)
        p95 = float(np.percentile(v, 95))
        ok = "yes" if (p95 if name != "sign-in -> queue" else v.max()) <= target[name] else "no"
        lines.append(f"| {name} | {len(v)} | {np.median(v):.2f} | {p95:.2f} | {v.max():.2f} | "
                     f"{'p95' if name != 'sign-in -> queue' else 'max'} <= {target[name]:g} "
                     f"| {ok} |")  # fmt: skip
    write_page(args.out, lines,
               "The machine is shared (2 cores): the browser, Streamlit and this script run on "
               "it together, so figures vary between runs.")  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
