"""Review queue: one row per patient (the current decision), most urgent first, with paging."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from clinical_ui import session, views
from safer.review import QUEUE_STATUSES, patient_queue, shown

COLUMNS = {  # queue row key -> column title, most useful first; short titles (units in the
    # header's help) and fixed widths so every column, status included, fits a 1440 px screen
    # with the sidebar open. The decision's step is on the decision page (its title), not here.
    "urgency": "urgency",
    "stay_id": "stay",
    "patient": "patient",
    "MAP": "MAP",
    "lactate": "lactate",
    "SOFA": "SOFA",
    "why": "why urgent",
    "recommendation": "recommendation",
    "waiting": "waiting",
    "status": "status",
}
FORMATS = {"urgency": ".1f", "MAP": ".0f", "lactate": ".1f", "SOFA": ".0f"}
WIDTHS = {"urgency": 66, "stay": 62, "patient": 62, "MAP": 48, "lactate": 62, "SOFA": 50,
          "why urgent": 225, "recommendation": 225, "waiting": 64, "status": 72}  # fmt: skip
HELP = {"urgency": "points: SOFA, MAP < 65, lactate > 2 and rising, SOFA rising, waiting",
        "MAP": "mean arterial pressure (mmHg), last measured",
        "lactate": "mmol/L, last measured (carried forward at most 8 h)",
        "SOFA": "last measured", "recommendation": "the dose recommended, or why it defers",
        "waiting": "time since the decision was stored"}  # fmt: skip

factory = session.factory_or_stop()
user = session.require_page(factory, "view_queue")
st.title("Review queue")
st.session_state.setdefault("queue_page", 1)
c1, c2, c3, c4 = st.columns([1, 1, 1, 1])
status = c1.selectbox("Status", QUEUE_STATUSES, key="queue_status")
flagged_only = c2.toggle("Only deferrals / low confidence", key="queue_flagged")
stay = c3.text_input("Stay id", key="queue_stay", placeholder="all stays")
page_size = c4.selectbox("Patients per page", (10, 20, 50), index=1, key="queue_page_size")
queue = None
with session.shown_errors("loading the queue"), factory() as s:
    stay_id = int(stay) if stay.strip().isdigit() else None
    queue = patient_queue(s, user, status=status, stay_id=stay_id, flagged_only=flagged_only,
                          page=st.session_state["queue_page"], page_size=page_size)  # fmt: skip
if queue is None:
    st.stop()
st.session_state["queue_page"] = queue.page
st.caption(
    f"{queue.patients} patient(s) with a {status if status != 'all' else ''} current decision "
    f"({queue.flagged} without a single backed dose) · page {queue.page} of {queue.pages} · "
    f"{queue.pending_decisions} pending decision(s) in the database, {queue.older_pending} of "
    "them behind a patient's current decision (earlier steps, or another gate's decision of "
    "the same step)"
)
if not queue.rows:
    st.info("No patient to review with these filters.")
    st.stop()
table = pd.DataFrame(queue.rows)
table["patient"] = [f"{shown(a, '.0f', ' y')} {shown(s)}"
                    for a, s in zip(table["age"], table["sex"], strict=True)]  # fmt: skip
table["waiting"] = [f"{h:.0f} h" if h >= 1 else f"{60 * h:.0f} min" for h in table["waiting_hours"]]
# a link, not a button: the browser goes straight to the decision (no rerun of this page first)
urgent = {"rec": str(queue.rows[0]["id"]), session.TOKEN: session.token()}
st.page_link("pages/decision.py",
             label=f"Review the most urgent patient (stay {queue.rows[0]['stay_id']})",
             icon=":material/arrow_forward:", disabled=status == "reviewed",
             query_params=urgent)  # fmt: skip
shown_table = table[list(COLUMNS)].rename(columns=COLUMNS)
picked = views.table(
    shown_table,
    formats={COLUMNS[k]: f for k, f in FORMATS.items()},
    widths=WIDTHS,
    header_help=HELP,
    hide_index=True,
    key="queue_table",
    on_select="rerun",
    selection_mode="single-row",
    height=35 * (len(table) + 1) + 3,
)  # fmt: skip
st.caption("Select a row to open that patient's decision.")
if picked.selection.rows:
    session.open_decision(queue.rows[picked.selection.rows[0]]["id"])
p1, p2, _ = st.columns([1, 1, 4])
if p1.button("Previous page", key="queue_prev", disabled=queue.page <= 1):
    st.session_state["queue_page"] = queue.page - 1
    st.rerun()
if p2.button("Next page", key="queue_next_page", disabled=queue.page >= queue.pages):
    st.session_state["queue_page"] = queue.page + 1
    st.rerun()
