"""Audit page (auditor, admin): each gate's promise and what was realised, overall and per
subgroup; the trail as a readable table with CSV export; any decision, read-only; verification."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from clinical_ui import session, views
from safer.decisions import DriftResult
from safer.review import shown, trail_table
from safer.review.trail import EVENT_WORDS
from safer.store import coverage_summary, decision_detail, require, verify_trail

SUBGROUP_COLUMNS = {"column": "subgroup", "value": "value", "n": "decisions",
                    "value_realised": "realised", "ci_low": "95% low", "ci_high": "95% high",
                    "abstention_rate": "deferred", "flag": "flag"}  # fmt: skip


# the trail on screen: every column within views.TABLE_WIDTH (the row checkbox takes about 35
# px) at fixed widths; a long text is cut at its column's edge and read whole in the decision
# opened below (a review's doses and reason) or in the CSV export (every column, in full). A
# review has a reason and no details, any other event details and no reason: they share one
# column. The recommendation id stays in the data (a selected row opens it), named in the box.
TRAIL_SHOWN = {"seq": "seq", "when": "when", "who": "who", "what": "what", "stay": "stay",
               "step": "step", "recommended": "recommended", "chosen": "chosen",
               "inside set": "set", "reason / details": "reason / details"}  # fmt: skip
TRAIL_WIDTHS = {"seq": 42, "when": 120, "who": 100, "what": 158, "stay": 60, "step": 42,
                "recommended": 118, "chosen": 118, "set": 58, "reason / details": 124}  # fmt: skip
TRAIL_HELP = {"set": "the chosen dose inside or outside the gate's set",
              "recommended": "the whole text in the decision opened below, or the CSV export",
              "chosen": "the whole text in the decision opened below, or the CSV export",
              "reason / details": "a review's reason; what any other event did"}  # fmt: skip


def _pct(x) -> str:
    return shown(x, ".1%")


def _drift(drift: dict | None) -> None:
    """The stored drift check (``safer audit --live``), or how to run one."""
    if not drift:
        st.caption("Drift: not checked. Run `safer audit ... --live LIVE.parquet` to test "
                   "whether live stays are still exchangeable with the calibration "
                   "stays.")  # fmt: skip
        return
    (st.error if drift["flagged"] else st.success)(DriftResult(**drift).words())


def _gate(i: int, row: dict) -> None:
    method = row.get("method") or "no gate"
    settings = f"alpha = {row['alpha']}" if row.get("alpha") is not None else ""
    if row.get("delta") is not None:
        settings += f", delta = {row['delta']}"
    st.markdown(f"#### Gate {method}" + (f" ({settings})" if settings else ""))
    st.caption(f"model {row['model_hash'][:12]} · calibration {row['gate'][:12]}")
    c = st.columns(5)
    c[0].metric("decisions stored", row["recommendations"])
    c[1].metric("deferred by the gate", _pct(row["abstention_rate"]))
    c[2].metric("reviewed", row["reviewed"])
    c[3].metric("overridden", _pct(row["override_rate"]),
                help="share of reviews of a recommended dose where the clinician chose another "
                "dose (a dose entered where the gate deferred is not counted)")  # fmt: skip
    c[4].metric("reviews that deferred", row.get("reviews_deferred", 0))
    if row.get("metric") is None:
        st.info(f"No realised guarantee: {row['report']}.")
        return
    ok = not row["guarantee_flagged"]
    if row.get("guarantee"):
        with st.expander("What this gate promises (and does not)"):
            st.write(row["guarantee"])
    text = (f"Realised {row['metric']} on {row['test_decisions']} held-out decisions: "
            f"**{_pct(row['realised'])}** (95% interval {_pct(row['ci_low'])} – "
            f"{_pct(row['ci_high'])}) against {row['promise']}: "
            + ("**consistent**" if ok else "**missed beyond its interval**"))  # fmt: skip
    (st.success if ok else st.error)(text)
    groups = pd.DataFrame(row.get("subgroups") or [])
    if not groups.empty:
        flagged = int(groups["flagged"].sum())
        st.markdown(f"Per subgroup: **{flagged} flagged** of {len(groups)} (realised value "
                    "outside the promise beyond its interval)")  # fmt: skip
        groups["flag"] = groups["flagged"].map({True: "missed", False: ""})
        views.table(groups[list(SUBGROUP_COLUMNS)].rename(columns=SUBGROUP_COLUMNS),
                    formats=dict.fromkeys(("realised", "95% low", "95% high", "deferred"), ".1%"),
                    hint="not measured in this subgroup", key=f"audit_subgroups_{i}",
                    row_style=lambda r: ["background-color: #fdd" if r["flag"] else ""] * len(r),
                    hide_index=True, height=35 * (len(groups) + 1) + 3)  # fmt: skip
    _drift(row.get("drift"))
    html_report = Path(row["report"]).with_suffix(".html")
    if html_report.is_file():
        st.download_button(f"Full audit report (HTML) of gate {method}",
                           html_report.read_bytes(), file_name=html_report.name,
                           mime="text/html", key=f"audit_report_{i}")  # fmt: skip


factory = session.factory_or_stop()
user = session.require_page(factory, "view_audit")
st.title("Audit")

st.subheader("Guarantees, overall and per subgroup")
summary = []
with session.shown_errors("loading the summary"), factory() as s:
    summary = coverage_summary(s, user)
if not summary:
    st.info("No recommendations stored yet.")
for i, row in enumerate(summary):
    _gate(i, row)

st.subheader("Audit trail")
c1, c2, c3 = st.columns(3)
actor = c1.text_input("Who (user name)", key="audit_actor")
action = c2.selectbox("What", ["all", *EVENT_WORDS], format_func=lambda a: EVENT_WORDS.get(a, a),
                      key="audit_action")  # fmt: skip
since = c3.date_input("Since", value=None, key="audit_since")
rows = []
with session.shown_errors("loading the trail"), factory() as s:
    rows = trail_table(
        s, user, actor=actor.strip() or None, action=None if action == "all" else action,
        since=None if since is None else pd.Timestamp(since).to_pydatetime(),
    )  # fmt: skip
table = pd.DataFrame(rows)
st.caption(f"{len(rows)} event(s)")
if rows:
    for column in ("stay", "step", "recommendation id"):
        table[column] = pd.array(table[column], dtype="Int64")  # ids, not 200640.0
    shown_trail = table.assign(**{"reason / details": table["reason"].fillna(table["details"])})
    shown_trail = shown_trail[list(TRAIL_SHOWN)].rename(columns=TRAIL_SHOWN)
    picked = views.table(
        shown_trail, formats={"when": "%Y-%m-%d %H:%M"}, hint="not part of this event",
        widths=TRAIL_WIDTHS, header_help=TRAIL_HELP, hide_index=True, key="audit_table",
        on_select="rerun", selection_mode="single-row",
    )  # fmt: skip
    with session.shown_errors("exporting"):
        require(user, "export_audit")
        st.download_button("Export CSV", table.to_csv(index=False), file_name="audit_trail.csv",
                           mime="text/csv", key="audit_csv")  # fmt: skip
    rec_ids = [int(r) for r in table["recommendation id"].dropna().unique()]
    selected = None
    if picked.selection.rows:
        value = table.iloc[picked.selection.rows[0]]["recommendation id"]
        selected = None if pd.isna(value) else int(value)
    if rec_ids:
        st.caption("Select a review in the table, or pick its recommendation here, to open the "
                   "decision read-only.")  # fmt: skip
        where = table.dropna(subset="recommendation id").drop_duplicates("recommendation id")
        where = {int(r["recommendation id"]): f"#{int(r['recommendation id'])} stay {r['stay']} "
                 f"step {r['step']}" for _, r in where.iterrows()}  # fmt: skip
        pick = st.selectbox("Open decision (read-only)", rec_ids, index=None,
                            format_func=where.get, placeholder="recommendation id",
                            key="audit_open")  # fmt: skip
        selected = pick if pick is not None else selected
    if selected is not None:
        detail = None
        with session.shown_errors("loading the decision"), factory() as s:
            detail = decision_detail(s, user, selected)
        if detail is not None:
            with st.container(border=True):
                views.decision(detail)
                st.subheader("Review")
                if detail["review"] is None:
                    st.info("Not reviewed yet.")
                else:
                    views.saved_review(detail)

st.subheader("Verification")
if st.button("Verify the trail", key="audit_verify"):
    with session.shown_errors("verifying"), factory() as s:
        require(user, "verify_audit")
        report = verify_trail(s)
        if report.ok:
            st.success(f"Trail intact: {report.n_events} events, head {report.head_hash[:16]}")
        else:
            st.error("Trail broken: " + "; ".join(report.problems))
