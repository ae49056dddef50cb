"""Audit page (auditor, admin): the trail with filters and CSV export, summary, verification."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from clinical_ui import session
from safer.store import coverage_summary, list_events, require, verify_trail

SUMMARY_COLUMNS = {
    "gate": "gate",
    "method": "method",
    "alpha": "alpha",
    "metric": "guaranteed quantity",
    "realised": "realised",
    "promise": "promise",
    "recommendations": "recommendations",
    "abstention_rate": "abstention",
    "flagged_rate": "flagged",
    "reviewed": "reviewed",
    "override_rate": "overridden",
    "model": "model",
}
PERCENT = st.column_config.NumberColumn(format="percent")

factory = session.factory_or_stop()
user = session.require_page(factory, "view_audit")
st.title("Audit")

st.subheader("Guarantees and review summary")
summary = []
with session.shown_errors("loading the summary"), factory() as s:
    summary = coverage_summary(s, user)
if summary:
    table = pd.DataFrame(summary).assign(model=lambda t: t["model_hash"].str[:12])
    shown = [c for c in SUMMARY_COLUMNS if c in table.columns]
    st.dataframe(
        table[shown].rename(columns=SUMMARY_COLUMNS), hide_index=True, key="audit_summary",
        column_config={SUMMARY_COLUMNS[c]: PERCENT
                       for c in ("realised", "abstention_rate", "flagged_rate", "override_rate")},
    )  # fmt: skip
    for i, row in enumerate(summary):
        if row.get("metric") is None:
            st.markdown(f"**Gate {row['gate']}**: {row['report']}.")
            continue
        st.markdown(
            f"**Gate {row['gate']}** ({row['method']}, alpha = {row['alpha']}): realised "
            f"{row['metric']} **{row['realised']:.1%}** (95% interval {row['ci_low']:.1%} – "
            f"{row['ci_high']:.1%}) against the promise {row['metric']} {row['promise']}; "
            f"{'**flagged**' if row['guarantee_flagged'] else 'consistent'}, "
            f"{row['flagged_subgroups']} flagged subgroup(s)."
        )
        html_report = Path(row["report"]).with_suffix(".html")
        if html_report.is_file():
            st.download_button(f"Download the audit report of gate {row['gate']}",
                               html_report.read_bytes(), file_name=html_report.name,
                               mime="text/html", key=f"audit_report_{i}")  # fmt: skip
else:
    st.info("No recommendations stored yet.")

st.subheader("Audit trail")
c1, c2, c3 = st.columns(3)
actor = c1.text_input("Who (user name)", key="audit_actor")
action = c2.selectbox("What", ["all", "review", "add_user", "load_cohort", "add_recommendations",
                                "what_if_viewed"],
                      key="audit_action")  # fmt: skip
since = c3.date_input("Since", value=None, key="audit_since")
events = []
with session.shown_errors("loading the trail"), factory() as s:
    events = list_events(
        s,
        actor=actor.strip() or None,
        action=None if action == "all" else action,
        since=None if since is None else pd.Timestamp(since).to_pydatetime(),
    )
table = pd.DataFrame(events)
st.caption(f"{len(events)} event(s)")
if events:
    st.dataframe(table, hide_index=True, key="audit_table")
    with session.shown_errors("exporting"):
        require(user, "export_audit")
        st.download_button("Export CSV", table.to_csv(index=False), file_name="audit_trail.csv",
                           mime="text/csv", key="audit_csv")  # fmt: skip

st.subheader("Verification")
if st.button("Verify the trail", key="audit_verify"):
    with session.shown_errors("verifying"), factory() as s:
        require(user, "verify_audit")
        report = verify_trail(s)
        if report.ok:
            st.success(f"Trail intact: {report.n_events} events, head {report.head_hash[:16]}")
        else:
            st.error("Trail broken: " + "; ".join(report.problems))
