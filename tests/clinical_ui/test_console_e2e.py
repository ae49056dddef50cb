"""Real-browser tests: Debian's headless Chromium drives the console served by Streamlit."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from safer.store import connect
from safer.store.schema import Review
from tests.clinical_ui.conftest import PASSWORDS, seed

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def console(tmp_path_factory, ui_cohort):
    if CHROMIUM is None:
        pytest.skip("e2e tests need Debian's chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="e2e tests need the playwright package")
    url = f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'console.db'}"
    seed(url, ui_cohort)
    port = _free_port()
    env = dict(os.environ, SAFER_DB_URL=url, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "clinical_ui" / "app.py"),
         "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("streamlit did not start within 60 s")
        yield base, url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def page(console):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pg = browser.new_page()
        pg.set_default_timeout(30_000)
        yield pg
        browser.close()


def _sign_in(page, base, user, password):
    page.goto(base)
    page.get_by_label("User name").fill(user)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_wrong_password_is_refused(console, page):
    base, _ = console
    _sign_in(page, base, "ana", "not-her-password")
    page.get_by_text("wrong user name or password").wait_for()
    assert page.get_by_role("button", name="Sign in").is_visible()


def test_override_with_reason_then_audit_trail_shows_it(console, page):
    base, url = console
    _sign_in(page, base, "ana", PASSWORDS["ana"])
    page.get_by_role("heading", name="Review queue").wait_for()
    page.get_by_role("button", name="Open decision").click()
    page.get_by_text("Recommended dose").wait_for()
    page.get_by_text("override", exact=True).click()
    page.get_by_label("Reason (required for an override)").fill("lactate falling; hold fluids")
    page.get_by_role("button", name="Submit review").click()
    page.get_by_text("Saved: overridden").wait_for()
    with connect(url)() as s:
        assert s.execute(sa.select(Review.reason)).scalar_one() == "lactate falling; hold fluids"

    page.get_by_role("button", name="Sign out").click()
    _sign_in(page, base, "cy", PASSWORDS["cy"])
    page.get_by_role("heading", name="Audit").first.wait_for()
    who = page.get_by_label("Who (user name)")
    who.fill("ana")
    who.press("Enter")
    page.get_by_text("1 event(s)").wait_for()
    page.get_by_role("button", name="Verify the trail").click()
    page.get_by_text("Trail intact").wait_for()
