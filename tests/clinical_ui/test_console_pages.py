"""Every console page under Streamlit's AppTest: renders, enforces roles, records reviews."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from safer.store import connect, upgrade
from safer.store.schema import AuditEvent, Review

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


def test_queue_lists_flagged_first_and_filters(seeded_db):
    _, users = seeded_db
    at = app_as(users["ana"])
    assert not at.exception and at.title[0].value == "Review queue"
    table = at.dataframe[0].value
    assert list(table["flagged"]) == sorted(table["flagged"], reverse=True)
    at.checkbox(key="queue_flagged").check().run()
    assert at.dataframe[0].value["flagged"].all()


def test_decision_page_shows_dose_and_records_an_override(seeded_db):
    url, users = seeded_db
    at = app_as(users["ana"])
    at.button(key="queue_open").click().run()
    assert not at.exception
    assert "Stay" in at.title[0].value
    assert "mL/4h" in at.subheader[0].value  # the recommended dose, in clinical units
    at.radio(key="review_decision").set_value("override")
    at.selectbox(key="review_action").set_value(7)
    at.text_area(key="review_reason").input("")
    at.button[-1].click().run()
    assert "needs a reason" in errors(at)
    at.text_area(key="review_reason").input("MAP 85 on current dose")
    at.button[-1].click().run()
    assert not at.exception and "Saved: overridden" in at.success[-1].value
    Session = connect(url)
    with Session() as s:
        review = s.execute(sa.select(Review)).scalar_one()
        assert (review.chosen_action, review.reason) == (7, "MAP 85 on current dose")
    # a second submission of the same (now reviewed) recommendation is refused, not overwritten
    at.run()
    assert "override by ana" in at.success[0].value


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
    assert len(at.dataframe) == 2  # summary and trail
    at.button(key="audit_verify").click().run()
    assert "Trail intact" in at.success[0].value
    at.text_input(key="audit_actor").input("nobody").run()
    assert "0 event(s)" in at.caption[0].value
    at.switch_page("pages/decision.py").run()
    assert "may not view queue" in errors(at)


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
    at = app_as(users["ana"])
    at.button(key="queue_open").click().run()
    at.button[-1].click().run()  # accept (top action is the default)
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
    summary = at.dataframe[0].value
    assert summary["method"].tolist() == ["lac"] and summary["alpha"].tolist() == [0.2]
    assert summary["realised"].iloc[0] == pytest.approx(report["overall"]["value_realised"])
    text = " ".join(m.value for m in at.markdown)
    assert "realised coverage" in text and ">= 0.8" in text
    buttons = [b for b in at.get("download_button") if b.key.startswith("audit_report")]
    assert len(buttons) == 1 and "audit report" in buttons[0].proto.label
