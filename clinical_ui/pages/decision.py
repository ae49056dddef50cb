"""One decision: patient banner, trends, notes before it, the recommendation and the review."""

from __future__ import annotations

import streamlit as st

from clinical_ui import session, views
from safer.actions import N_ACTIONS, describe_action
from safer.errors import SaferError
from safer.review import next_patient
from safer.store import PERMISSIONS, REASON_CODES, decision_detail, stay_history, submit_review

ACCEPT, CHOOSE, DEFER = "Accept the recommended dose", "Choose a dose", "Defer to usual care"

factory = session.factory_or_stop()
user = session.require_page(factory, "view_queue")
rec_id = session.requested_decision()
if rec_id is None:
    st.info("Open a patient from the review queue.")
    st.stop()
detail = None
with session.shown_errors("loading the decision"), factory() as s:
    detail = decision_detail(s, user, rec_id)
if detail is None:
    st.stop()


def _factors(detail: dict):
    """The model's top factors for this decision, or a line saying why there are none."""
    model = session.configured_model()
    if model is None:
        return None, "Start the console with `--model DIR` (the model that made the decisions) "\
            "to see the model's top factors."  # fmt: skip
    if model.content_hash_ != detail["model_hash"]:
        return None, (f"The console's model ({model.content_hash_[:12]}) did not make this "
                      f"decision (model {detail['model_hash'][:12]}): no factors.")  # fmt: skip
    dose = detail["action"] if detail["action"] >= 0 else detail["top_action"]
    try:
        with factory() as s:
            history = stay_history(s, user, detail["id"])
        return session.top_factors_of(model, model.content_hash_, history, detail["id"],
                                      dose), None  # fmt: skip
    except SaferError as exc:
        return None, f"No factors: {exc}"


views.decision(detail, factors=_factors(detail))

st.subheader("Review")
if detail["review"] is not None:
    views.saved_review(detail)
    if user.role in PERMISSIONS["review"]:
        nxt = None
        with session.shown_errors("finding the next patient"), factory() as s:
            nxt = next_patient(s, user, after=detail["id"])
        if nxt is None:
            st.info("No other patient is waiting.")
        elif st.button("Next patient", key="review_next", type="primary"):
            session.open_decision(nxt)
elif user.role not in PERMISSIONS["review"]:
    st.info(f"Your role ({user.role}) can view but not review.")
elif detail["superseded"]:
    st.warning("This decision was made on data that has since been corrected; review the "
               "patient's current decision from the queue.")  # fmt: skip
else:
    in_set = set(detail["prediction_set"] or [])
    choices = ([ACCEPT] if detail["action"] >= 0 else []) + [CHOOSE, DEFER]
    with st.form("review_form"):
        choice = st.radio("Your decision", choices, index=None, horizontal=True,
                          key="review_decision")  # fmt: skip
        dose = st.selectbox(
            "Dose (when you choose one)", list(range(N_ACTIONS)), index=None,
            format_func=lambda a: describe_action(a) + ("  · in the set" if a in in_set else ""),
            placeholder="choose a dose", key="review_action",
        )  # fmt: skip
        code = st.selectbox("Reason", list(REASON_CODES), index=None,
                            format_func=REASON_CODES.get, placeholder="pick a reason",
                            key="review_reason_code")  # fmt: skip
        reason = st.text_area("Comment (needed for 'Other')", key="review_reason", height=68)
        submitted = st.form_submit_button("Save review", type="primary")
    if submitted:
        decision = {ACCEPT: "accept", CHOOSE: "override", DEFER: "defer"}.get(choice)
        if decision is None:
            st.error("Pick a decision: accept, choose a dose or defer.")
        else:
            with session.shown_errors("saving your review"), factory() as s:
                submit_review(s, user, detail["id"], decision,
                              chosen_action=dose if decision == "override" else None,
                              reason=reason, reason_code=code or "",
                              expected_version=detail["version"])  # fmt: skip
                st.rerun()
    if st.button("Skip to the next patient", key="review_skip"):
        with session.shown_errors("finding the next patient"), factory() as s:
            nxt = next_patient(s, user, after=detail["id"])
            if nxt is None:
                st.info("No other patient is waiting.")
            else:
                session.open_decision(nxt)
