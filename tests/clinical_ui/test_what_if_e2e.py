"""The what-if page in a real browser: Debian's headless Chromium drives the console served by
Streamlit, with tiny SAFER, gate and tsedit models (trained in tests/clinical_ui/test_what_if.py's
fixture, none on the console's stays)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from safer.store import connect
from safer.store.schema import AuditEvent
from tests.clinical_ui.conftest import PASSWORDS, seed
from tests.clinical_ui.test_console_e2e import ARGS, CHROMIUM, _serve, _sign_in
from tests.clinical_ui.test_what_if import whatif_models  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def whatif_console(tmp_path_factory, ui_cohort, whatif_models):  # noqa: F811
    if CHROMIUM is None:
        pytest.skip("e2e tests need Debian's chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="e2e tests need the playwright package")
    url = f"sqlite:///{tmp_path_factory.mktemp('e2e-whatif') / 'console.db'}"
    seed(url, ui_cohort)
    d = whatif_models["dir"]
    for base in _serve(
        url,
        OMP_NUM_THREADS="1",
        SAFER_MODEL_DIR=str(d / "model"),
        SAFER_GATE_PATH=str(d / "gate.json"),
        SAFER_TSEDIT_DIR=str(d / "tsedit"),
    ):
        yield base, url


def _run_a_what_if(page, base):
    """Sign in as ana, open the what-if page, set MAP at the decision to 150 and run it."""
    _sign_in(page, base, "ana", PASSWORDS["ana"])
    page.get_by_role("heading", name="Review queue", exact=True).wait_for()
    page.get_by_role("link", name="What-if").click()
    page.get_by_role("heading", name="What-if", exact=True).wait_for()
    page.get_by_role("heading", name="Charted vitals").wait_for()
    page.get_by_text("As charted").first.wait_for()
    value = page.get_by_role("spinbutton", name="Value")
    value.fill("150")
    value.press("Enter")
    page.get_by_role("button", name="Add anchor").click()
    page.get_by_text("Nothing is computed before you press it").wait_for()
    run = page.get_by_role("button", name="Run the what-if")
    run.wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll('button')].some("
        "b => b.innerText.includes('Run the what-if') && !b.disabled)"
    )
    run.click()
    page.get_by_role("heading", name="Charted vs what-if vitals").wait_for()


def test_an_anchor_in_the_browser_edits_the_vitals_and_rescores(whatif_console):
    from playwright.sync_api import sync_playwright

    base, url = whatif_console
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page()
        page.set_default_timeout(90_000)
        _run_a_what_if(page, base)
        page.get_by_text("What-if (vitals changed from step").wait_for()
        page.get_by_text("What moved").wait_for()
        first_line = re.compile(r"^The (recommendation (did not change|changed)|gate still defers)")
        page.get_by_text(first_line).first.wait_for()
        page.get_by_text("Vitals edited:").wait_for()
        assert page.get_by_text("Traceback").count() == 0
        browser.close()
    with connect(url)() as s:
        event = s.execute(
            sa.select(AuditEvent).where(AuditEvent.action == "what_if_viewed")
        ).scalar_one()
    assert event.actor == "ana" and '"anchors":1' in event.after


def test_the_vitals_table_fits_a_1440_px_screen_with_the_sidebar_open(whatif_console):
    """After a what-if, every column of the charted / what-if table is on screen (no sideways
    scrolling), as the queue's is."""
    from playwright.sync_api import sync_playwright

    base, _ = whatif_console
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(90_000)
        _run_a_what_if(page, base)
        vitals = page.locator("[data-testid='stDataFrame']").filter(
            has=page.locator("th", has_text="MAP")  # not the edits' table, whose cells say MAP
        )
        grid = vitals.locator(".dvn-scroller")
        grid.wait_for()
        page.wait_for_timeout(500)  # the grid sizes its columns after its first paint
        assert page.get_by_role("button", name="Sign out").is_visible()  # the sidebar is open
        overflow = grid.evaluate("e => e.scrollWidth - e.clientWidth")
        browser.close()
    assert overflow <= 0, f"the vitals table scrolls sideways by {overflow} px"
