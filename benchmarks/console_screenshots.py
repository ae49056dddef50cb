"""Screenshots of the console for docs/console.md, taken in headless Chromium from a demo run.

    safer demo --out demo_out
    safer tsedit train --data cohort:demo_out/cohort.parquet --window 12 --out demo_out/tsedit
    python benchmarks/console_screenshots.py --demo demo_out --tsedit demo_out/tsedit --out docs/img

Serves the console on a copy of the demo's database (nothing is written to the original), signs
in as the demo's clinician and auditor (passwords from the demo's credentials file) and writes,
1440 px wide: ``console_sign_in.png``, ``console_queue.png``, ``console_decision.png`` (the most
urgent patient) and ``console_audit.png`` (each the first 1400 px of the page);
``console_saved_review.png`` (that decision after the clinician chose a dose with a reason and
saved the review, the whole page) and ``console_audit_decision.png`` (the auditor's page with
that decision opened read-only from the trail and the trail verified, the whole page); with
``--tsedit`` also ``console_what_if.png`` (MAP set to 55 mmHg at the decision step and the
what-if run, the whole page). Needs Debian's chromium and the playwright package (test extras).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from safer.cli.db import serving_console  # noqa: E402

IDLE = "[data-testid='stStatusWidget']"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def _passwords(credentials: Path) -> dict[str, str]:
    """``name (role): password`` lines of the demo's credentials file."""
    out = {}
    for line in credentials.read_text().splitlines():
        name, sep, password = line.partition(": ")
        if sep and "(" in name:
            out[name.split(" (")[0]] = password.strip()
    return out


# every table's grid and every chart drawn (they render after the run has finished)
DRAWN = (
    "() => [...document.querySelectorAll(\"[data-testid='stDataFrame'], "
    "[data-testid='stVegaLiteChart'], [data-testid='stArrowVegaLiteChart']\")]"
    ".every(e => e.querySelector('canvas, svg'))"
)


def _idle(page) -> None:
    page.wait_for_timeout(500)
    page.locator(IDLE).wait_for(state="hidden")
    page.wait_for_function(DRAWN)
    page.wait_for_timeout(1000)  # the grids' and charts' first paint


# Streamlit scrolls inside its main container, so a full-page screenshot shows one viewport:
# a whole page needs a viewport as tall as that container's content
CONTENT_HEIGHT = "() => document.querySelector(\"[data-testid='stMain']\").scrollHeight"
WIDTH, HEIGHT = 1440, 1400


def _whole_page(page) -> None:
    """Grow the viewport until it holds the whole page (charts may re-flow once)."""
    for _ in range(3):
        height = max(HEIGHT, int(page.evaluate(CONTENT_HEIGHT)))
        if height == page.viewport_size["height"]:
            return
        page.set_viewport_size({"width": WIDTH, "height": height})
        _idle(page)


def _sign_in(page, base: str, user: str, password: str) -> None:
    page.goto(base)
    page.get_by_label("User name").fill(user)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _save_a_review(page) -> str:
    """On the open decision: choose a dose with a coded reason and a comment, save; returns the
    decision's id (from the address)."""
    from urllib.parse import parse_qs, urlparse

    rec = parse_qs(urlparse(page.url).query)["rec"][0]
    page.get_by_text("Choose a dose", exact=True).click()
    page.get_by_label("Dose (when you choose one)").click()
    page.get_by_role("option", name="IV fluid none, vasopressor 0.08-0.22").first.click()
    reason = page.get_by_label("Reason", exact=True)
    reason.click()
    reason.fill("Bedside picture differs")  # the list shows a few options at a time: filter it
    page.get_by_role("option", name="Bedside picture differs").first.click()
    page.get_by_label("Comment (needed for 'Other')").fill(
        "MAP 58 at the bedside after the last set of obs"
    )
    _idle(page)
    page.get_by_role("button", name="Save review").click()
    page.get_by_text("Chose a dose by demo-clinician").wait_for()
    return rec


def _open_from_the_trail(page, rec: str) -> None:
    """On the audit page: open decision ``rec`` read-only and verify the trail."""
    box = page.get_by_label("Open decision (read-only)")
    box.click()
    box.fill(rec)
    page.get_by_role("option", name=f"#{rec} stay").click()
    page.get_by_text("Chose a dose by demo-clinician").wait_for()
    page.get_by_role("heading", name="Trends up to the decision").wait_for()
    _idle(page)
    page.get_by_role("button", name="Verify the trail").click()
    page.get_by_text("Trail intact").wait_for()


def take(
    base: str, chromium: str, passwords: dict[str, str], out: Path, what_if: bool = False
) -> list[Path]:
    from playwright.sync_api import sync_playwright

    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        page.set_default_timeout(120_000)

        def shot(name: str, whole: bool = False) -> None:
            """The first screen of the page, or with ``whole`` all of it."""
            page.mouse.move(WIDTH - 5, 5)  # no hover effect (a link icon, the sidebar button)
            _idle(page)
            if whole:
                _whole_page(page)
            path = out / f"console_{name}.png"
            page.screenshot(path=str(path), full_page=True)
            shots.append(path)
            page.set_viewport_size({"width": WIDTH, "height": HEIGHT})

        page.goto(base)
        page.get_by_role("button", name="Sign in").wait_for()
        shot("sign_in")
        _sign_in(page, base, "demo-clinician", passwords["demo-clinician"])
        page.get_by_role("heading", name="Review queue", exact=True).wait_for()
        shot("queue")
        page.get_by_role("link", name="Review the most urgent patient").click()
        page.get_by_text("Recommendation", exact=True).wait_for()
        page.get_by_role("button", name="Save review").wait_for()
        shot("decision")
        reviewed = _save_a_review(page)
        shot("saved_review", whole=True)
        if what_if:
            page.get_by_role("link", name="What-if").click()
            page.get_by_role("heading", name="Charted vitals").wait_for()
            value = page.get_by_role("spinbutton", name="Value")
            value.fill("55")
            value.press("Enter")
            page.get_by_role("button", name="Add anchor").click()
            page.get_by_role("button", name="Run the what-if").click()
            page.get_by_role("heading", name="Charted vs what-if vitals").wait_for()
            shot("what_if", whole=True)
        _idle(page)
        page.get_by_role("button", name="Sign out").click()
        _sign_in(page, base, "demo-auditor", passwords["demo-auditor"])
        page.get_by_role("heading", name="Audit").first.wait_for()
        shot("audit")
        _open_from_the_trail(page, reviewed)
        shot("audit_decision", whole=True)
        browser.close()
    return shots


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", type=Path, required=True, help="a `safer demo --out` folder")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument(
        "--tsedit", type=Path, help="a `safer tsedit train` folder: adds the what-if shot"
    )
    args = ap.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("needs Debian's chromium (apt-get install chromium) and playwright")
    db, credentials = args.demo / "safer.db", args.demo / "demo_credentials.txt"
    if not db.is_file() or not credentials.is_file():
        sys.exit(f"{args.demo} is not a demo folder (no safer.db / demo_credentials.txt); "
                 "run `safer demo --out DIR` first")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="safer-shots-") as work:
        copy = Path(work) / "safer.db"
        shutil.copyfile(db, copy)
        env = dict(os.environ, SAFER_DB_URL=f"sqlite:///{copy}", PYTHONPATH=str(ROOT))
        for var in ("SAFER_MODEL_DIR", "SAFER_GATE_PATH", "SAFER_TSEDIT_DIR"):
            env.pop(var, None)
        if args.tsedit is not None:
            env.update(SAFER_MODEL_DIR=str(args.demo / "model"),
                       SAFER_GATE_PATH=str(args.demo / "gate.json"),
                       SAFER_TSEDIT_DIR=str(args.tsedit))  # fmt: skip
        with serving_console(ROOT / "clinical_ui" / "app.py", env) as base:
            shots = take(base, chromium, _passwords(credentials), args.out, args.tsedit is not None)
    for path in shots:
        print(path)


if __name__ == "__main__":
    main()
