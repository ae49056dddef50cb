"""Real-browser tests: Debian's headless Chromium drives the console served by Streamlit."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from safer.cli.db import serving_console
from safer.store import connect
from safer.store.schema import AuditEvent, Recommendation, Review
from tests.clinical_ui.conftest import PASSWORDS, seed, seed_gated

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip


def _serve(url, **env):
    """Serve the console on database ``url`` (extra ``env`` variables for the server) for the
    module's tests; yields its base address."""
    env = dict(os.environ, SAFER_DB_URL=url, PYTHONPATH=str(ROOT), **env)
    with serving_console(ROOT / "clinical_ui" / "app.py", env) as base:
        yield base


def _need_browser():
    if CHROMIUM is None:
        pytest.skip("e2e tests need Debian's chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="e2e tests need the playwright package")


@pytest.fixture(scope="module")
def console(tmp_path_factory, ui_cohort):
    _need_browser()
    url = f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'console.db'}"
    seed(url, ui_cohort)
    for base in _serve(url):
        yield base, url


@pytest.fixture(scope="module")
def gated_console(tmp_path_factory, small_cohort):
    """The console on a tiny model's LAC-gated decisions with a stored, subgrouped report."""
    _need_browser()
    folder = tmp_path_factory.mktemp("e2e_gated")
    url = f"sqlite:///{folder / 'console.db'}"
    seed_gated(url, small_cohort, folder)
    for base in _serve(url):
        yield base, url


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


def test_the_whole_queue_table_fits_a_1440_px_screen_with_the_sidebar_open(console, page):
    base, _ = console
    page.set_viewport_size({"width": 1440, "height": 900})
    _sign_in(page, base, "ana", PASSWORDS["ana"])
    page.get_by_role("heading", name="Review queue", exact=True).wait_for()
    grid = page.locator("[data-testid='stDataFrame'] .dvn-scroller").first
    grid.wait_for()
    page.wait_for_timeout(500)  # the grid sizes its columns after its first paint
    assert page.get_by_role("button", name="Sign out").is_visible()  # the sidebar is open
    headers = page.locator("[data-testid='stDataFrame'] th").all_text_contents()
    assert headers[-1] == "status"
    overflow = grid.evaluate("e => e.scrollWidth - e.clientWidth")
    assert overflow <= 0, f"the queue scrolls sideways by {overflow} px; status is off-screen"


def test_override_with_reason_then_audit_trail_shows_it(console, page):
    base, url = console
    _sign_in(page, base, "ana", PASSWORDS["ana"])
    page.get_by_role("heading", name="Review queue", exact=True).wait_for()
    page.get_by_role("link", name="Review the most urgent patient").click()
    page.get_by_text("Recommendation", exact=True).wait_for()
    _choose_a_dose(page, "IV fluid none, vasopressor 0-0.08")
    _reason(page, "Bedside picture differs", "lactate falling; hold fluids")
    page.get_by_role("button", name="Save review").click()
    page.get_by_text("Chose a dose by ana").wait_for()
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


# -- the review flow on gated decisions ----------------------------------------------------------


def _idle(page):
    """Wait until the app has finished its run (a click during a run can be dropped)."""
    page.wait_for_timeout(300)
    page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden")


def _choose_a_dose(page, dose_prefix):
    page.get_by_text("Choose a dose", exact=True).click()
    page.get_by_label("Dose (when you choose one)").click()
    page.get_by_role("option", name=dose_prefix).first.click()


def _reason(page, code_words, comment=""):
    box = page.get_by_label("Reason", exact=True)
    box.click()
    box.fill(code_words)  # the list shows a few options at a time: filter it
    page.get_by_role("option", name=code_words).first.click()
    if comment:
        page.get_by_label("Comment (needed for 'Other')").fill(comment)


def _open_most_urgent(page, base):
    _sign_in(page, base, "ana", PASSWORDS["ana"])
    page.get_by_role("heading", name="Review queue", exact=True).wait_for()
    page.get_by_role("link", name="Review the most urgent patient").click()
    page.get_by_text("Recommendation", exact=True).wait_for()
    page.get_by_role("button", name="Save review").wait_for()
    _idle(page)


def _reviews(url):
    with connect(url)() as s:
        rows = s.execute(
            sa.select(Review, Recommendation).join(Recommendation)
        ).all()  # fmt: skip
        return [(rv.decision, rv.chosen_action, rv.reason_code, rec) for rv, rec in rows]


def test_a_clinician_reviews_three_patients_in_a_row_override_outside_the_set_and_defer(
    gated_console, page
):
    base, url = gated_console
    _open_most_urgent(page, base)
    seen = []
    for i in range(3):
        page.get_by_role("button", name="Save review").wait_for()
        _idle(page)
        seen.append(page.get_by_role("heading", level=1).first.inner_text())
        if i == 1:  # a dose outside the gate's set
            page.get_by_text("Choose a dose", exact=True).click()
            page.get_by_label("Dose (when you choose one)").click()
            page.get_by_role("option").filter(has_not_text="in the set").first.click()
            _reason(page, "Bedside picture differs", "MAP 85 at the bedside")
        else:  # defer, with a coded reason
            page.get_by_text("Defer to usual care", exact=True).last.click()
            _reason(page, "Needs more information")
        _idle(page)
        page.get_by_role("button", name="Save review").click()
        page.get_by_text("Deferred by ana" if i != 1 else "Chose a dose by ana").wait_for()
        _idle(page)
        page.get_by_role("button", name="Next patient").click()
        page.get_by_role("heading", level=1).filter(has_not_text=seen[-1]).first.wait_for()
    assert len(set(seen)) == 3  # three different patients
    reviews = _reviews(url)
    assert sorted(r[0] for r in reviews) == ["defer", "defer", "override"]
    override = next(r for r in reviews if r[0] == "override")
    assert override[1] not in override[3].prediction_set  # outside the set
    assert all(r[1] is None for r in reviews if r[0] == "defer")
    assert {r[2] for r in reviews} == {"uncertain", "clinical_picture"}
    with connect(url)() as s:
        event = s.execute(sa.select(AuditEvent).where(AuditEvent.action == "review",
                          AuditEvent.entity_id == str(override[3].id))).scalar_one()  # fmt: skip
    assert '"in_set":false' in event.after


def test_a_reload_and_a_deep_link_keep_the_session(gated_console, page):
    base, _ = gated_console
    _open_most_urgent(page, base)
    title = page.get_by_role("heading", level=1).first.inner_text()
    link = page.url
    assert "rec=" in link and "s=" in link
    page.reload()
    page.get_by_role("heading", name=title).wait_for()  # same decision, still signed in
    page.get_by_role("button", name="Sign out").wait_for()
    other = page.context.browser.new_page()  # the link opened in another tab
    other.goto(link)
    other.get_by_role("heading", name=title).wait_for()
    other.close()
    _idle(page)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()
    page.goto(link)  # a signed-out session's link no longer works
    page.get_by_role("button", name="Sign in").wait_for()
    page.get_by_text("session expired").wait_for()


def test_an_auditor_opens_a_decision_from_the_trail_and_sees_the_subgroup_table(
    gated_console, page
):
    base, url = gated_console
    page.set_viewport_size({"width": 1440, "height": 900})
    _open_most_urgent(page, base)
    page.get_by_text("Defer to usual care", exact=True).last.click()
    _reason(page, "Goals of care")
    _idle(page)
    page.get_by_role("button", name="Save review").click()
    page.get_by_text("Deferred by ana").wait_for()
    _idle(page)
    page.get_by_role("button", name="Sign out").click()
    _sign_in(page, base, "cy", PASSWORDS["cy"])
    page.get_by_role("heading", name="Audit").first.wait_for()
    page.get_by_text("Per subgroup:").wait_for()
    page.get_by_text("Realised coverage").wait_for()
    _idle(page)
    # subgroups and trail: wait for the second table (count() would not wait for the grids)
    page.locator("[data-testid='stDataFrame']").nth(1).wait_for()
    # every column of the trail on a 1440 px screen with the sidebar open
    trail = page.locator("[data-testid='stDataFrame']").filter(
        has=page.locator("th", has_text="recommended")
    )
    trail.locator(".dvn-scroller").wait_for()
    page.wait_for_timeout(500)  # the grid sizes its columns after its first paint
    overflow = trail.locator(".dvn-scroller").evaluate("e => e.scrollWidth - e.clientWidth")
    assert overflow <= 0, f"the trail scrolls sideways by {overflow} px"
    rec_id = next(r[3].id for r in _reviews(url) if r[2] == "goals_of_care")
    box = page.get_by_label("Open decision (read-only)")
    box.click()
    box.fill(str(rec_id))
    page.get_by_role("option", name=f"#{rec_id} stay").click()
    page.get_by_text("Deferred by ana").wait_for()  # the decision, read-only, with its review
    page.get_by_role("heading", name="Trends up to the decision").wait_for()
    assert page.get_by_role("button", name="Save review").count() == 0


def _token(page) -> str:
    from urllib.parse import parse_qs, urlparse

    return parse_qs(urlparse(page.url).query)["s"][0]


def test_roles_are_separated(gated_console, page):
    """A clinician cannot reach the audit page; an auditor cannot reach a review form."""
    base, _ = gated_console
    _sign_in(page, base, "ana", PASSWORDS["ana"])
    page.get_by_role("heading", name="Review queue", exact=True).wait_for()
    _idle(page)
    assert page.get_by_role("link", name="Audit").count() == 0
    page.goto(f"{base}/audit?s={_token(page)}")
    page.get_by_text("Page not found").wait_for()
    assert page.get_by_role("button", name="Verify the trail").count() == 0

    auditor = page.context.browser.new_page()
    _sign_in(auditor, base, "cy", PASSWORDS["cy"])
    auditor.get_by_role("heading", name="Audit").first.wait_for()
    _idle(auditor)
    assert auditor.get_by_role("link", name="Review queue").count() == 0
    auditor.goto(f"{base}/decision?rec=1&s={_token(auditor)}")
    auditor.get_by_text("Page not found").wait_for()
    _idle(auditor)
    assert auditor.get_by_role("button", name="Save review").count() == 0
    auditor.close()
