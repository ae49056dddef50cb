"""Every console page under Streamlit's AppTest: renders, enforces roles, records reviews."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from streamlit import dataframe_util
from streamlit.testing.v1 import AppTest

from clinical_ui.views import TABLE_WIDTH
from safer.review import patient_queue
from safer.store import connect, upgrade
from safer.store.schema import AuditEvent, Review
from tests.clinical_ui.conftest import seed

APP = str(Path(__file__).resolve().parents[2] / "clinical_ui" / "app.py")
TIMEOUT = 30


def app_as(user=None, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if user is not None:
        at.session_state["user"] = user
        at.session_state["last_active"] = time.time()
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def errors(at) -> str:
    return " | ".join(e.value for e in at.error)


def test_sign_in_page_refuses_a_wrong_password_and_accepts_the_right_one(seeded_db):
    at = app_as()
    assert not at.exception
    at.text_input(key="signin_user").input("ana")
    at.text_input(key="signin_password").input("not-her-password")
    at.button[0].click().run()
    assert "wrong user name or password" in errors(at)
    assert at.session_state["user"] is None
    at.text_input(key="signin_password").input("ana-password")
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state["user"].username == "ana"
    at.switch_page("pages/queue.py").run()  # AppTest stays on the old page; the browser follows
    assert at.title[0].value == "Review queue"


def test_queue_has_one_row_per_patient_most_urgent_first_with_honest_counts(seeded_db):
    _, users = seeded_db
    at = app_as(users["ana"])
    assert not at.exception and at.title[0].value == "Review queue"
    table = at.dataframe[0].value
    assert table["stay"].is_unique and len(table) == 6  # six patients, one current decision each
    assert list(table["urgency"]) == sorted(table["urgency"], reverse=True)
    assert all(r.startswith(("IV fluid", "defer")) for r in table["recommendation"])
    assert not table["recommendation"].str.contains("F[0-4]/V[0-4]|abstain").any()
    caption = " ".join(c.value for c in at.caption)
    assert "6 patient(s)" in caption and "pending decision(s) in the database" in caption
    at.toggle(key="queue_flagged").set_value(True).run()
    assert not at.exception


def shown_cells(grid) -> pd.DataFrame:
    """The text a table's cells show in the browser (its Styler's display values)."""
    return dataframe_util.convert_arrow_bytes_to_pandas_df(
        grid.proto.arrow_data.styler.display_values
    )


def test_views_table_writes_missing_cells_as_a_dash_and_says_why_in_the_header():
    def page():
        import pandas as pd

        from clinical_ui import views

        frame = pd.DataFrame({"lactate": [1.26, None], "MAP": [70.0, 61.0], "who": ["a", None]})
        views.table(frame, formats={"lactate": ".1f", "MAP": ".0f"}, key="t",
                    column_config={"lactate": {"help": "mmol/L"}})  # fmt: skip
        views.table(frame.iloc[:1], hint="not part of this event", key="u")

    at = AppTest.from_function(page, default_timeout=TIMEOUT).run()
    assert not at.exception
    grid, single = at.dataframe
    assert grid.proto.placeholder == single.proto.placeholder == "—"  # null cells in the grid
    assert pd.isna(grid.value.loc[1, "lactate"]) and grid.value["lactate"].dtype == float
    assert shown_cells(grid).to_dict("list") == {
        "lactate": ["1.3", "—"], "MAP": ["70", "61"], "who": ["a", "—"]}  # fmt: skip
    config = json.loads(grid.proto.columns)
    assert config["lactate"]["help"] == "mmol/L; — = not charted"  # added to the given help
    assert config["who"]["help"] == "— = not charted"
    assert "MAP" not in config  # nothing missing, no hint
    assert json.loads(single.proto.columns) == {}


def test_a_lab_never_charted_is_a_dash_on_the_queue_and_the_decision_and_the_queue_fits(
    tmp_path, ui_cohort, monkeypatch
):
    cohort = ui_cohort.copy()
    stay = int(cohort["stay_id"].iloc[0])
    cohort.loc[cohort["stay_id"] == stay, "Arterial_lactate"] = np.nan
    url = f"sqlite:///{tmp_path / 'uncharted.db'}"
    users = seed(url, cohort)
    monkeypatch.setenv("SAFER_DB_URL", url)
    at = app_as(users["ana"])
    assert not at.exception, at.exception
    grid = at.dataframe[0]
    table, cells = grid.value, shown_cells(grid)
    row = int(np.flatnonzero(table["stay"] == stay)[0])
    assert pd.isna(table["lactate"].iloc[row])  # the data stay numbers (sorting)
    assert cells["lactate"].iloc[row] == "—" and grid.proto.placeholder == "—"
    text = " ".join(cells.astype(str).to_numpy().ravel())
    assert "None" not in text and "nan" not in text
    config = json.loads(grid.proto.columns)
    assert config["lactate"]["help"].endswith("— = not charted")
    # every column, status included, within a 1440 px screen with the sidebar open (the
    # row-selection checkbox takes about 35 px)
    assert list(table.columns)[-1] == "status" and "step" not in table.columns
    assert sum(config[c]["width"] for c in table.columns) + 35 <= TABLE_WIDTH

    with connect(url)() as s:
        rec = patient_queue(s, users["ana"], stay_id=stay).rows[0]["id"]
    at.query_params["rec"] = str(rec)
    at.switch_page("pages/decision.py").run()
    assert not at.exception, at.exception
    lactate = next(m for m in at.markdown if m.value.startswith("**Lactate**"))
    assert lactate.value.endswith("—") and lactate.proto.help == "not charted"
    charted = next(m for m in at.markdown if m.value.startswith("**MAP**"))
    assert "mmHg" in charted.value and not charted.proto.help


def _open_first(at):
    """Follow the queue's "Review the most urgent patient" link (a page link with ?rec=ID)."""
    link = next(x for x in at.get("page_link") if x.proto.label.startswith("Review the most"))
    query = parse_qs(link.proto.query_string)
    assert link.proto.page == "decision" and "s" in query  # the session token travels with it
    at.query_params["rec"] = query["rec"][0]
    return at.switch_page("pages/decision.py").run()


def _follow(at, previous):
    """Follow a switch to the decision page as a browser does (AppTest stays on the old page
    and keeps the old address)."""
    rec = at.session_state["rec_id"]
    assert rec is not None and rec != previous
    at.query_params["rec"] = str(rec)
    return at.switch_page("pages/decision.py").run()


def test_decision_page_shows_doses_in_units_and_records_a_choice_with_no_default(seeded_db):
    url, users = seeded_db
    at = _open_first(app_as(users["ana"]))
    assert not at.exception, at.exception
    assert "Stay" in at.title[0].value
    assert any(h.value.startswith("IV fluid") for h in at.subheader)  # dose in clinical units
    assert at.radio(key="review_decision").value is None  # nothing preselected
    assert at.selectbox(key="review_action").value is None
    at.button[-2].click().run()  # "Save review" with no decision
    assert "Pick a decision" in errors(at)
    at.radio(key="review_decision").set_value("Choose a dose")
    at.selectbox(key="review_action").set_value(7)
    at.button[-2].click().run()
    assert "needs a reason" in errors(at)
    at.selectbox(key="review_reason_code").set_value("clinical_picture")
    at.text_area(key="review_reason").input("MAP 85 on current dose")
    at.button[-2].click().run()
    assert not at.exception
    assert "Chose a dose by ana" in at.success[-1].value
    Session = connect(url)
    with Session() as s:
        review = s.execute(sa.select(Review)).scalar_one()
        assert (review.chosen_action, review.reason_code, review.reason) == (
            7, "clinical_picture", "MAP 85 on current dose")  # fmt: skip
    assert any(b.key == "review_next" for b in at.button)  # next patient
    at.button(key="review_next").click().run()
    _follow(at, review.recommendation_id)
    assert not at.exception and at.radio(key="review_decision").value is None


def test_a_deep_link_token_restores_the_session_and_opens_the_decision(seeded_db):
    from clinical_ui import session as console_session  # noqa: F401 - the module under test
    from safer.store import issue_session_token

    _, users = seeded_db
    at = app_as(users["ana"])
    token = (
        at.query_params["s"][0] if isinstance(at.query_params["s"], list) else at.query_params["s"]
    )
    assert token.startswith(f"{users['ana'].id}.")
    fresh = AppTest.from_file(APP, default_timeout=TIMEOUT)
    fresh.query_params["s"] = token
    fresh.run()  # a new browser session (a reload) with the token in the address
    assert not fresh.exception and fresh.session_state["user"].username == "ana"
    assert fresh.title[0].value == "Review queue"
    forged = AppTest.from_file(APP, default_timeout=TIMEOUT)
    forged.query_params["s"] = issue_session_token(users["ana"], b"not the key" * 3)
    forged.run()
    assert forged.session_state["user"] is None
    assert "not valid" in forged.info[0].value


def test_expired_session_returns_to_sign_in(seeded_db, monkeypatch):
    _, users = seeded_db
    at = app_as(users["ana"], last_active=time.time() - 3600)
    assert not at.exception
    assert at.session_state["user"] is None
    assert "session expired" in at.info[0].value


def test_auditor_gets_the_audit_page_and_cannot_review(seeded_db):
    _, users = seeded_db
    at = app_as(users["cy"])
    assert not at.exception and at.title[0].value == "Audit"
    assert len(at.dataframe) == 1  # the trail (no stored report: no subgroup table)
    trail = at.dataframe[0]
    config = json.loads(trail.proto.columns)  # every column within a 1440 px screen
    assert sum(config[c]["width"] for c in trail.value.columns) + 35 <= TABLE_WIDTH
    assert "reason / details" in trail.value.columns and "user added" in set(trail.value["what"])
    at.button(key="audit_verify").click().run()
    assert "Trail intact" in at.success[-1].value
    at.text_input(key="audit_actor").input("nobody").run()
    assert any("0 event(s)" in c.value for c in at.caption)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        app_as(users["cy"]).switch_page("pages/decision.py")  # not in an auditor's navigation
    page = AppTest.from_file(str(Path(APP).parent / "pages" / "decision.py"),
                             default_timeout=TIMEOUT)  # fmt: skip
    page.session_state["user"] = users["cy"]
    page.session_state["last_active"] = time.time()
    page.session_state["rec_id"] = 1
    page.run()  # refused server-side if reached anyway
    assert "may not view queue" in errors(page)
    assert not any(b.key == "review_form" for b in page.button)


def test_clinician_cannot_open_the_audit_page(seeded_db):
    _, users = seeded_db
    at = app_as(users["ana"])
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/audit.py")  # not in a clinician's navigation at all
    page = AppTest.from_file(str(Path(APP).parent / "pages" / "audit.py"), default_timeout=TIMEOUT)
    page.session_state["user"] = users["ana"]
    page.session_state["last_active"] = time.time()
    page.run()  # and refused server-side if reached anyway
    assert "may not view audit" in errors(page)
    assert not any(b.key == "audit_verify" for b in page.button)


def test_stale_database_is_refused_with_the_fix(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    monkeypatch.setenv("SAFER_DB_URL", url)
    at = app_as()
    assert "safer db upgrade" in errors(at)
    upgrade(url)
    Session = connect(url)
    with Session() as s, s.begin():
        s.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))
    assert "safer db upgrade" in errors(app_as())


def test_review_events_reach_the_trail(seeded_db):
    url, users = seeded_db
    at = _open_first(app_as(users["ana"]))
    at.radio(key="review_decision").set_value("Accept the recommended dose")
    at.button[-2].click().run()
    Session = connect(url)
    with Session() as s:
        actions = list(s.execute(sa.select(AuditEvent.action)).scalars())
    assert actions[-1] == "review"
    if not at.success:
        pytest.fail(errors(at))


def test_audit_page_shows_the_gates_method_alpha_realised_coverage_and_report(
    tmp_path, small_cohort, monkeypatch
):
    """A real model and gate, audited and stored by the decisions stage, as `safer demo` does."""
    from safer.cohorts import split_stays
    from safer.decisions import calibrate_and_audit
    from safer.models import make_model
    from safer.store import add_user, store_decisions

    splits = split_stays(small_cohort, seed=0)
    train, cal, test = (splits.subset(small_cohort, s) for s in ("train", "calibration", "test"))
    model = make_model("bc-mlp", use_notes=False, epochs=2, d_model=16).fit(train, progress=False)
    gate, report = calibrate_and_audit(
        model, train, cal, test, method="lac", alpha=0.2, report_path=tmp_path / "report.html"
    )
    url = f"sqlite:///{tmp_path / 'audited.db'}"
    upgrade(url)
    with connect(url)() as s, s.begin():
        auditor = add_user(s, "cy", "cy-password", role="auditor")
        store_decisions(s, test, model, gate)
    monkeypatch.setenv("SAFER_DB_URL", url)
    at = app_as(auditor)
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "Gate lac (alpha = 0.2" in text
    realised = at.success[0].value
    assert "Realised coverage" in realised and ">= 0.8" in realised
    assert f"{report['overall']['value_realised']:.1%}" in realised
    buttons = [b for b in at.get("download_button") if b.key.startswith("audit_report")]
    assert len(buttons) == 1 and "audit report" in buttons[0].proto.label


def test_a_session_secret_that_is_not_hex_stops_the_console_with_the_fix(seeded_db, monkeypatch):
    from clinical_ui import session

    _, users = seeded_db
    monkeypatch.setenv("SAFER_SESSION_SECRET", "not-a-hex-key")
    session._secret.clear()  # the key is cached per server process
    try:
        at = app_as(users["ana"])  # a signed-in run re-issues its session token
        assert not at.exception
        assert "must be at least 32 hex digits" in errors(at)
    finally:
        session._secret.clear()


def test_serving_a_console_that_cannot_start_fails_fast_with_its_exit_code(tmp_path):
    """The browser tests' and the speed benchmark's start-and-wait reports a server that
    died instead of waiting out its timeout (and never yields a dead address)."""
    import os

    from safer.cli.db import serving_console
    from safer.errors import SaferError

    started = time.monotonic()
    app = tmp_path / "no_such_app.py"
    with (
        pytest.raises(SaferError, match="exited with code"),
        serving_console(app, dict(os.environ), ready_s=120),
    ):
        pytest.fail("yielded an address for a server that is not running")
    assert time.monotonic() - started < 60
