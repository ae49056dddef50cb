"""Review queue: flagged recommendations (abstained or low-confidence) first, with filters."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from clinical_ui import session
from safer.store import review_queue

factory = session.factory_or_stop()
user = session.require_page(factory, "view_queue")
st.title("Review queue")
c1, c2, c3 = st.columns(3)
status = c1.selectbox("Status", ["pending", "reviewed", "all"], key="queue_status")
flagged_only = c2.checkbox("Flagged only", key="queue_flagged")
stay = c3.text_input("Stay id", key="queue_stay")
rows = []
with session.shown_errors("loading the queue"), factory() as s:
    stay_id = int(stay) if stay.strip().isdigit() else None
    rows = review_queue(s, user, status=status, flagged_only=flagged_only, stay_id=stay_id)
if not rows:
    st.info("Nothing to review with these filters.")
    st.stop()
table = pd.DataFrame(rows)
st.caption(f"{len(rows)} recommendation(s); {int(table['flagged'].sum())} flagged")
st.dataframe(
    table[
        ["id", "flagged", "stay_id", "step", "recommended", "top_probability", "reason", "status"]
    ],
    hide_index=True,
    key="queue_table",
)
labels = {r["id"]: f"#{r['id']} stay {r['stay_id']} step {r['step']}" for r in rows}
pick = st.selectbox("Open recommendation", list(labels), format_func=labels.get, key="queue_pick")
if st.button("Open decision", key="queue_open"):
    st.session_state["rec_id"] = pick
    st.switch_page("pages/decision.py")
