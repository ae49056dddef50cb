"""Screenshots of the console for docs/console.md, taken in headless Chromium from a demo run.

    safer demo --out demo_out
    safer tsedit train --data cohort:demo_out/cohort.parquet --window 12 --out demo_out/tsedit
    python benchmarks/console_screenshots.py --demo demo_out --tsedit demo_out/tsedit --out docs/img

Serves the console on a copy of the demo's database (nothing is written to the original), signs
in as the demo's clinician and auditor (passwords from the demo's credentials file) and writes
``console_sign_in.png``, ``console_queue.png``, ``console_decision.png`` and
``console_audit.png``; with ``--tsedit`` also ``console_what_if.png`` (MAP set to 55 mmHg at the
decision step and the what-if run; the shot shows the recommendations and the charts).
Needs Debian's chromium and the playwright package (test extras).
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


def _sign_in(page, base: str, user: str, password: str) -> None:
    page.goto(base)
    page.get_by_label("User name").fill(user)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def take(
    base: str, chromium: str, passwords: dict[str, str], out: Path, what_if: bool = False
) -> list[Path]:
    from playwright.sync_api import sync_playwright

    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1400})
        page.set_default_timeout(120_000)

        def shot(name: str) -> None:
            _idle(page)
            path = out / f"console_{name}.png"
            page.screenshot(path=str(path), full_page=True)
            shots.append(path)

        page.goto(base)
        page.get_by_role("button", name="Sign in").wait_for()
        shot("sign_in")
        _sign_in(page, base, "demo-clinician", passwords["demo-clinician"])
        page.get_by_role("heading", name="Review queue", exact=True).wait_for()
        shot("queue")
        page.get_by_role("link", name="Review the most urgent patient").click()
        page.get_by_text("Recommendation", exact=True).wait_for()
        shot("decision")
        if what_if:
            page.get_by_role("link", name="What-if").click()
            page.get_by_role("heading", name="Charted vitals").wait_for()
            value = page.get_by_role("spinbutton", name="Value")
            value.fill("55")
            value.press("Enter")
            page.get_by_role("button", name="Add anchor").click()
            page.get_by_role("button", name="Run the what-if").click()
            page.get_by_role("heading", name="Charted vs what-if vitals").wait_for()
            # the page scrolls inside Streamlit's container: a tall viewport shows it whole
            page.set_viewport_size({"width": 1440, "height": 2250})
            shot("what_if")
            page.set_viewport_size({"width": 1440, "height": 1400})
        _idle(page)
        page.get_by_role("button", name="Sign out").click()
        _sign_in(page, base, "demo-auditor", passwords["demo-auditor"])
        page.get_by_role("heading", name="Audit").first.wait_for()
        shot("audit")
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
