"""One decision: trajectory, notes charted before it, the recommendation and the review form."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from clinical_ui import session
from safer.actions import N_ACTIONS, action_label, describe_action
from safer.store import PERMISSIONS, decision_detail, submit_review

factory = session.factory_or_stop()
user = session.require_page(factory, "view_queue")
rec_id = st.session_state.get("rec_id")
if rec_id is None:
    st.info("Open a recommendation from the review queue.")
    st.stop()
detail = None
with session.shown_errors("loading the recommendation"), factory() as s:
    detail = decision_detail(s, user, rec_id)
if detail is None:
    st.stop()

st.title(f"Stay {detail['stay_id']}, step {detail['step']}")
st.caption(f"decision time {detail['decision_time']:%Y-%m-%d %H:%M} · status {detail['status']}")
if detail["flagged"]:
    st.warning(f"Flagged: {detail['reason'] or 'low confidence'}")
left, right = st.columns(2)
left.caption("Recommended dose")
left.subheader(detail["recommended"])
left.write(f"Model's most likely dose: {detail['model_top_dose']}")
if detail["prediction_set"] is not None:
    doses = detail["prediction_set_doses"] or ["(empty set)"]
    left.markdown(
        f"Prediction set (alpha = {detail['alpha']}), {len(detail['prediction_set_doses'])} "
        "dose(s):\n" + "\n".join(f"- {d}" for d in doses)
    )
else:
    left.write("No conformal gate: no prediction set.")
left.caption(f"model {detail['model_hash'][:12]} · calibration {detail['calibration_hash'][:12]}")
proba = pd.DataFrame(
    {"probability": detail["probabilities"]},
    index=[action_label(a) for a in range(N_ACTIONS)],
)
right.bar_chart(proba, height=260)


traj = pd.DataFrame(detail["trajectory"]).set_index("step")
st.subheader("Trajectory up to the decision (4-hour steps)")
shown = traj[["MAP", "HR", "lactate", "SOFA", "fluid_ml", "vaso_ugkgmin"]]
if len(traj) < 2:  # one point draws no line: show the values instead
    st.dataframe(shown, use_container_width=True)
else:
    c1, c2 = st.columns(2)
    c1.caption("MAP (mmHg), HR (bpm)")
    c1.line_chart(traj[["MAP", "HR"]], height=200)
    c2.caption("lactate (mmol/L), SOFA")
    c2.line_chart(traj[["lactate", "SOFA"]], height=200)
    c1.caption("IV fluid given (mL/4h)")
    c1.bar_chart(traj[["fluid_ml"]], height=160)
    c2.caption("vasopressor given (ug/kg/min)")
    c2.bar_chart(traj[["vaso_ugkgmin"]], height=160)

st.subheader(f"Notes charted before the decision ({len(detail['notes'])})")
for note in reversed(detail["notes"]):
    with st.expander(f"{note['note_time']:%Y-%m-%d %H:%M} (step {note['step']})"):
        st.text(note["text"])

st.subheader("Review")
if detail["review"] is not None:
    r = detail["review"]
    st.success(
        f"{r['decision']} by {r['reviewer']} at {r['created_at']:%Y-%m-%d %H:%M} UTC: "
        f"{r['chosen_dose']}" + (f" — {r['reason']}" if r["reason"] else "")
    )
elif user.role not in PERMISSIONS["review"]:
    st.info(f"Your role ({user.role}) can view but not review.")
else:
    with st.form("review_form"):
        decision = st.radio("Decision", ["accept", "override"], horizontal=True,
                            key="review_decision")  # fmt: skip
        default = max(detail["top_action"], 0)
        chosen = st.selectbox("Dose (for an override)", list(range(N_ACTIONS)), index=default,
                              format_func=describe_action, key="review_action")  # fmt: skip
        reason = st.text_area("Reason (required for an override)", key="review_reason")
        submitted = st.form_submit_button("Submit review")
    if submitted:
        with session.shown_errors("saving your review"), factory() as s:
            out = submit_review(s, user, detail["id"], decision, chosen_action=chosen,
                                reason=reason, expected_version=detail["version"])  # fmt: skip
            st.success(f"Saved: {out['status']} ({describe_action(out['chosen_action'])}).")
