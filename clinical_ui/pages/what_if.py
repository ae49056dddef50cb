"""What-if: edit a stay's vitals before a decision and see how SAFER's recommendation changes.

A thin view over :class:`safer.decisions.WhatIf`, :func:`safer.store.stay_history` and
:func:`safer.review.what_moved`: rebuild the stay's rows up to the decision, edit the vitals
from a step the user picks to the decision (the steps before it stay as charted), re-decide with
the configured model and gate and say what moved. Controls sit in forms and the edit runs on a
button press only; the decision as charted is scored once per decision picked. It never trains,
calibrates or changes a stored recommendation; it appends one "what_if_viewed" audit event per
edit (counts, channels and actions only, no patient text).
"""

from __future__ import annotations

import os

import altair as alt
import pandas as pd
import streamlit as st

from clinical_ui import session, views
from safer.actions import N_ACTIONS, describe_action
from safer.decisions import WhatIf
from safer.errors import SaferError
from safer.review import (
    VITAL_WORDS,
    reason_in_words,
    recommendation_text,
    series_table,
    vital_label,
    what_moved,
)
from safer.store import append_event, review_queue, stay_history
from safer.tsedit import Anchor, SegmentStat

ENV = {"model": "SAFER_MODEL_DIR", "gate": "SAFER_GATE_PATH", "tsedit": "SAFER_TSEDIT_DIR"}
NOT_CONFIGURED = (
    "The what-if page needs a trained SAFER model and a tsedit model (and optionally a conformal "
    "gate). Start the console with `safer console --model DIR --gate FILE --tsedit DIR`, or set "
    "SAFER_MODEL_DIR, SAFER_GATE_PATH and SAFER_TSEDIT_DIR before `streamlit run`."
)

# the vitals table: fixed widths well inside views.TABLE_WIDTH whatever the number of vitals
# edited (a tsedit model of more than 8 channels would need more); rows shown without scrolling
SERIES_WIDTHS = {"step": 50, "series": 70, "vital": 105}
SERIES_ROWS = 24  # a 12-step window with every step edited
MOVED_CSS = "color: #d62728; font-weight: 600"  # the charts' what-if red


@st.cache_resource(show_spinner="Loading the models...")
def _load(model_dir: str, gate_path: str | None, tsedit_dir: str) -> WhatIf:
    return WhatIf.load(model_dir, gate_path, tsedit_dir)


def _reset_controls(rec_id: int | None) -> None:
    st.session_state["whatif_rec"] = rec_id
    st.session_state["whatif_anchors"] = ()
    st.session_state["whatif_segments"] = ()
    st.session_state["whatif_result"] = None
    st.session_state["whatif_base"] = None  # the stay's rows and the charted decision


def _panel(col, title: str, scored: dict) -> None:
    with col.container(border=True):
        st.caption(title)
        action, dose_set = scored["action"], scored["prediction_set"]
        st.markdown(f"**{'Defer to usual care' if action < 0 else describe_action(action)}**")
        if action < 0 and dose_set:
            says = recommendation_text(action, dose_set).removeprefix("defer: ")
            st.write(f"What the gate's set says: {says}.")
        st.write(reason_in_words(scored["method"], scored["reason"], action, dose_set,
                                 scored["alpha"], max(scored["probabilities"])))  # fmt: skip
        if dose_set is not None:
            st.caption(f"{len(dose_set)} dose(s) in the gate's set")


def _chart(frame: pd.DataFrame, start: int):
    """Charted vs edited values of one channel as points and lines; a rule marks ``start``."""
    long = frame.reset_index(names="step").melt("step", var_name="series").dropna()
    color = alt.Color("series:N", legend=None,  # one caption above all charts says which is which
                      scale=alt.Scale(domain=["charted", "what-if"],
                                      range=["#1f77b4", "#d62728"]))  # fmt: skip
    # the window's steps only (a layer's x scales are merged: the rule takes the same one)
    x = alt.X("step:Q", axis=alt.Axis(tickMinStep=1, format="d"),
              scale=alt.Scale(domain=[frame.index[0] - 0.5, frame.index[-1] + 0.5]))  # fmt: skip
    line = alt.Chart(long).mark_line(point=True).encode(
        x=x,
        y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False),
                axis=alt.Axis(format=".4~r")),  # 98.5, not 98.500000
        color=color, strokeDash=alt.StrokeDash("series:N", legend=None),
        tooltip=["series", "step", alt.Tooltip("value:Q", format=".3g")],
    )  # fmt: skip
    rule = alt.Chart(pd.DataFrame({"step": [start - 0.5]})).mark_rule(
        color="gray", strokeDash=[4, 4]).encode(x=x)  # fmt: skip
    return alt.layer(rule, line)


factory = session.factory_or_stop()
user = session.require_page(factory, "view_queue")
st.title("What-if")
paths = {k: os.environ.get(v) or None for k, v in ENV.items()}
if paths["model"] is None or paths["tsedit"] is None:
    st.warning(NOT_CONFIGURED)
    st.stop()
try:
    whatif = _load(paths["model"], paths["gate"], paths["tsedit"])
except SaferError as exc:
    st.error(f"The what-if models could not be loaded: {exc}")
    st.stop()

queue = []
with session.shown_errors("loading the decisions"), factory() as s:
    queue = review_queue(s, user, status="all")
labels = {r["id"]: f"#{r['id']} stay {r['stay_id']} step {r['step']}" for r in queue}
current = st.session_state.get("rec_id")
if current is not None and current not in labels:
    labels = {current: f"#{current} (opened decision)", **labels}
if not labels:
    st.info("No stored decisions; load a cohort with `safer db load`.")
    st.stop()
options = list(labels)
pick = st.selectbox("Decision", options, format_func=labels.get, key="whatif_pick",
                    index=options.index(current) if current in labels else 0)  # fmt: skip
if st.session_state.get("whatif_rec") != pick or st.session_state.get("whatif_base") is None:
    _reset_controls(pick)
    with session.shown_errors("loading the stay"), factory() as s:
        history = stay_history(s, user, pick)
        st.session_state["whatif_base"] = {"history": history, "charted": whatif.score(history)}
base = st.session_state["whatif_base"]
if base is None:
    st.stop()
history, charted = base["history"], base["charted"]
original = whatif.vitals(history)
steps = [int(x) for x in original.index]
channels = whatif.channels
last = history.iloc[-1]
st.caption(f"Stay {int(last['stay_id'])}, decision at step {int(last['step'])} "
           f"({pd.Timestamp(last['charttime']):%Y-%m-%d %H:%M}); the editor sees steps "
           f"{steps[0]}-{steps[-1]} (4 h each) of "
           f"{', '.join(vital_label(c) for c in channels)}")  # fmt: skip

st.subheader("1. Which hours to change")
start = st.select_slider(
    "Change the vitals from step ... to the decision (the steps before stay as charted)",
    options=steps, value=steps[max(0, len(steps) - 2)], key="whatif_start",
    format_func=lambda x: f"{x} ({4 * (steps[-1] - x + 1)} h)",
)  # fmt: skip
late = steps[steps.index(start) :]
anchors, segments = st.session_state["whatif_anchors"], st.session_state["whatif_segments"]
early = [a for a in anchors if steps[a.time] < start] + [g for g in segments
                                                          if steps[g.start] < start]  # fmt: skip
if early:
    st.warning(f"{len(early)} edit(s) lie before step {start} and would change the past: "
               "clear them or pick an earlier step.")  # fmt: skip

st.subheader("2. The edit")
left_form, right_form = st.columns(2)
with left_form.form("whatif_anchor_form", border=True):
    st.write("Set a value at one step (confidence 1 = exactly, below 1 = part of the way)")
    a1, a2 = st.columns(2)
    a_step = a1.selectbox("Step", late, index=len(late) - 1, key="whatif_anchor_step")
    a_channel = a2.selectbox("Vital", channels, format_func=vital_label,
                             key="whatif_anchor_channel")  # fmt: skip
    a3, a4 = st.columns(2)
    a_value = a3.number_input("Value", value=None, key="whatif_anchor_value",
                              placeholder="value in the vital's unit")  # fmt: skip
    a_conf = a4.slider("Confidence", 0.0, 1.0, 1.0, 0.05, key="whatif_anchor_conf")
    add_anchor = st.form_submit_button("Add anchor", key="whatif_add_anchor")
if add_anchor:
    if a_value is None:
        st.error("Enter a value for the anchor.")
    elif a_step not in late:
        st.error(f"Step {a_step} is before step {start}: the past stays as charted.")
    else:
        anchor = Anchor(steps.index(a_step), a_channel, float(a_value), float(a_conf))
        kept = [a for a in anchors if (a.time, a.channel) != (anchor.time, anchor.channel)]
        st.session_state["whatif_anchors"] = (*kept, anchor)  # a new value replaces the old
        st.session_state["whatif_result"] = None
with right_form.form("whatif_segment_form", border=True):
    st.write("Set the mean of a vital over steps (from..to, both included)")
    s1, s2 = st.columns(2)
    s_from = s1.selectbox("From step", late, key="whatif_seg_from")
    s_to = s2.selectbox("To step", late, index=len(late) - 1, key="whatif_seg_to")
    s3, s4 = st.columns(2)
    s_channel = s3.selectbox("Vital", channels, format_func=vital_label,
                             key="whatif_seg_channel")  # fmt: skip
    s_target = s4.number_input("Mean", value=None, key="whatif_seg_target",
                               placeholder="target mean")  # fmt: skip
    add_segment = st.form_submit_button("Add segment mean", key="whatif_add_segment")
if add_segment:
    if s_target is None:
        st.error("Enter a target mean for the segment.")
    elif s_from not in late or s_to not in late or s_to < s_from:
        st.error(f"Pick steps from {start} to {steps[-1]}, 'from' not after 'to'.")
    else:
        seg = SegmentStat(steps.index(s_from), steps.index(s_to) + 1, s_channel, "mean",
                          float(s_target))  # fmt: skip
        kept = [g for g in segments if (g.start, g.end, g.channel) != (seg.start, seg.end,
                                                                      seg.channel)]  # fmt: skip
        st.session_state["whatif_segments"] = (*kept, seg)
        st.session_state["whatif_result"] = None

anchors, segments = st.session_state["whatif_anchors"], st.session_state["whatif_segments"]
controls = [
    {"edit": "value", "vital": vital_label(a.channel), "steps": str(steps[a.time]),
     "target": a.value, "confidence": a.confidence} for a in anchors
] + [
    {"edit": "mean", "vital": vital_label(g.channel),
     "steps": f"{steps[g.start]}-{steps[g.end - 1]}", "target": g.target, "confidence": None}
    for g in segments
]  # fmt: skip
if controls:
    views.table(pd.DataFrame(controls), formats={"target": ".4g", "confidence": ".2f"},
                hint="a segment mean has no confidence", hide_index=True,
                key="whatif_controls")  # fmt: skip
with st.expander("Editor settings"):
    follow = st.checkbox("Let the other vitals follow the edit (the editor's joint model); by "
                         "default only the vitals you set change", key="whatif_follow")  # fmt: skip
    ddim_steps = st.slider("DDIM steps", 5, 100, 50, 5, key="whatif_ddim")
    strength = st.slider("Strength (1 = ignore the charted series)", 0.1, 1.0, 0.5, 0.05,
                         key="whatif_strength")  # fmt: skip
b1, b2, _ = st.columns([1, 1, 4])
if b2.button("Clear the edits", key="whatif_clear"):
    _reset_controls(pick)
    st.rerun()
if b1.button("Run the what-if", key="whatif_run", type="primary",
             disabled=not controls or bool(early)):  # fmt: skip
    with session.shown_errors("the edit"), st.spinner("Editing..."):
        result = whatif.edit(history, anchors, segments, start=start, follow=follow,
                             steps=ddim_steps, strength=strength, seed=0,
                             charted=charted)  # fmt: skip
        st.session_state["whatif_result"] = {"series": result.series, "start": result.start,
                                             "scored": result.scored}  # fmt: skip
        with factory() as s, s.begin():
            append_event(s, actor=user.username, action="what_if_viewed",
                         entity="recommendation", entity_id=pick,
                         after={"anchors": len(anchors), "segments": len(segments),
                                "channels": sorted({a.channel for a in anchors}
                                                   | {g.channel for g in segments}),
                                "start_step": result.start,
                                "whatif_action": result.scored["action"]})  # fmt: skip

result = st.session_state["whatif_result"]
st.subheader("3. SAFER's recommendation: as charted and what-if")
left, right = st.columns(2)
_panel(left, "As charted", charted)
if result is None:
    right.info("Set the hours and the edit, then press “Run the what-if”. Nothing is computed "
               "before you press it.")  # fmt: skip
else:
    _panel(right, f"What-if (vitals changed from step {result['start']})", result["scored"])
    with st.container(border=True):
        st.markdown("**What moved**")
        for line in what_moved(charted, result["scored"], original, result["series"]):
            st.markdown(f"- {line}")

edited = original if result is None else result["series"]
shown_start = start if result is None else result["start"]
st.subheader("Charted vs what-if vitals" if result is not None else "Charted vitals")
st.caption(f"Blue: as charted; red, dashed: the what-if. The grey vertical line marks step "
           f"{shown_start}: to its left the chart is kept as charted; a value missing in the chart "
           "stays missing unless you set it.")  # fmt: skip
cols = st.columns(len(channels))
for col, ch in zip(cols, channels, strict=True):
    col.caption(vital_label(ch))
    frame = pd.DataFrame({"charted": original[ch]})
    if result is not None:  # only the values the edit moved, joined to the charted one before
        moved = (edited[ch] != original[ch]) & edited[ch].notna()
        if moved.any():
            first = steps.index(int(moved.idxmax()))
            moved.iloc[max(0, first - 1)] = True
            frame["what-if"] = edited[ch].where(moved.to_numpy())
    col.altair_chart(_chart(frame, shown_start), height=180)
# time runs down, one column per vital: the table keeps its width however many vitals the edit
# moved; the steps it moved get a what-if row under the charted one, the moved cells in red
series, moved = series_table(original, None if result is None else result["series"])
words = dict(zip(channels, series.columns[2:], strict=True))  # channel -> its column
views.table(
    series,
    formats={w: VITAL_WORDS.get(c, ("", "", ".1f"))[2] for c, w in words.items()},
    widths={"step": SERIES_WIDTHS["step"], "series": SERIES_WIDTHS["series"],
            **dict.fromkeys(words.values(), SERIES_WIDTHS["vital"])},
    header_help={"step": "4-hour block of the stay (the last one is the decision's)",
                 **{w: vital_label(c) for c, w in words.items()}},
    row_style=lambda row: [MOVED_CSS if moved.at[row.name, c] else "" for c in row.index],
    hide_index=True,
    height=35 * (min(len(series), SERIES_ROWS) + 1) + 3,
    key="whatif_series",
)  # fmt: skip

proba = pd.DataFrame({"as charted": charted["probabilities"]})
if result is not None:
    proba["what-if"] = result["scored"]["probabilities"]
proba.index = [describe_action(a) for a in range(N_ACTIONS)]
with st.expander("The model's 25 probabilities"):
    views.table(proba, formats=dict.fromkeys(proba.columns, ".1%"), key="whatif_proba")
