"""What-if: edit a stay's vitals before a decision and see how SAFER's recommendation changes.

A thin view over :class:`safer.decisions.WhatIf` and :func:`safer.store.stay_history`: rebuild
the stay's rows up to the decision, edit the vitals with the configured tsedit model (point
anchors, segment means), write them back and re-decide with the configured model and gate. It
never trains, calibrates or changes a stored recommendation; it appends one "what_if_viewed"
audit event per edit (counts, channels and actions only, no patient text).
"""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from clinical_ui import session
from safer.actions import N_ACTIONS, action_label
from safer.decisions import WhatIf
from safer.errors import SaferError
from safer.store import append_event, review_queue, stay_history
from safer.tsedit import Anchor, SegmentStat

ENV = {"model": "SAFER_MODEL_DIR", "gate": "SAFER_GATE_PATH", "tsedit": "SAFER_TSEDIT_DIR"}
NOT_CONFIGURED = (
    "The what-if page needs a trained SAFER model and a tsedit model (and optionally a conformal "
    "gate). Start the console with `safer console --model DIR --gate FILE --tsedit DIR`, or set "
    "SAFER_MODEL_DIR, SAFER_GATE_PATH and SAFER_TSEDIT_DIR before `streamlit run`."
)


@st.cache_resource(show_spinner="Loading the models...")
def _load(model_dir: str, gate_path: str | None, tsedit_dir: str) -> WhatIf:
    return WhatIf.load(model_dir, gate_path, tsedit_dir)


def _reset_controls(rec_id: int | None) -> None:
    st.session_state["whatif_rec"] = rec_id
    st.session_state["whatif_anchors"] = ()
    st.session_state["whatif_segments"] = ()
    st.session_state["whatif_result"] = None


def _panel(col, title: str, scored: dict) -> None:
    col.metric(title, scored["recommended"])
    col.caption(scored["reason"])
    if scored["prediction_set"] is None:
        col.write("No conformal gate: no prediction set.")
    else:
        col.write("Prediction set:")
        col.write(scored["prediction_set_doses"] or ["(empty set)"])


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
if st.session_state["whatif_rec"] != pick:
    _reset_controls(pick)

history = None
with session.shown_errors("loading the stay"), factory() as s:
    history = stay_history(s, user, pick)
if history is None:
    st.stop()
original = whatif.vitals(history)
steps = list(original.index)
channels = whatif.channels
last = history.iloc[-1]
st.caption(f"Stay {int(last['stay_id'])}, decision at step {int(last['step'])} "
           f"({pd.Timestamp(last['charttime']):%Y-%m-%d %H:%M}); editing steps "
           f"{steps[0]}-{steps[-1]} of {', '.join(channels)}")  # fmt: skip

st.subheader("Edit the vitals")
st.write("Point anchor (confidence 1 = reached exactly, below 1 = pulled part of the way):")
a1, a2, a3, a4 = st.columns(4)
a_step = a1.selectbox("Step", steps, index=len(steps) - 1, key="whatif_anchor_step")
a_channel = a2.selectbox("Channel", channels, key="whatif_anchor_channel")
a_value = a3.number_input("Value", value=None, key="whatif_anchor_value",
                          placeholder=f"charted {original.loc[a_step, a_channel]:.4g}")  # fmt: skip
a_conf = a4.slider("Confidence", 0.0, 1.0, 1.0, 0.05, key="whatif_anchor_conf")
if st.button("Add anchor", key="whatif_add_anchor"):
    if a_value is None:
        st.error("Enter a value for the anchor.")
    else:
        anchor = Anchor(steps.index(a_step), a_channel, float(a_value), float(a_conf))
        st.session_state["whatif_anchors"] = (*st.session_state["whatif_anchors"], anchor)
        st.session_state["whatif_result"] = None

st.write("Segment mean (steps from..to, both included):")
s1, s2, s3, s4 = st.columns(4)
s_from = s1.selectbox("From step", steps, key="whatif_seg_from")
s_to = s2.selectbox("To step", steps, index=len(steps) - 1, key="whatif_seg_to")
s_channel = s3.selectbox("Channel", channels, key="whatif_seg_channel")
s_target = s4.number_input("Mean", value=None, key="whatif_seg_target", placeholder="target")
if st.button("Add segment mean", key="whatif_add_segment"):
    if s_target is None:
        st.error("Enter a target mean for the segment.")
    else:
        seg = SegmentStat(steps.index(s_from), steps.index(s_to) + 1, s_channel, "mean",
                          float(s_target))  # fmt: skip
        st.session_state["whatif_segments"] = (*st.session_state["whatif_segments"], seg)
        st.session_state["whatif_result"] = None

anchors, segments = st.session_state["whatif_anchors"], st.session_state["whatif_segments"]
controls = [
    {"control": "anchor", "channel": a.channel, "steps": str(steps[a.time]),
     "target": a.value, "confidence": a.confidence} for a in anchors
] + [
    {"control": "segment mean", "channel": g.channel,
     "steps": f"{steps[g.start]}-{steps[g.end - 1]}", "target": g.target, "confidence": None}
    for g in segments
]  # fmt: skip
if controls:
    st.dataframe(pd.DataFrame(controls), hide_index=True, key="whatif_controls")
with st.expander("Sampler settings"):
    ddim_steps = st.slider("DDIM steps", 5, 100, 50, 5, key="whatif_ddim")
    strength = st.slider("Strength (1 = ignore the charted series)", 0.1, 1.0, 0.5, 0.05,
                         key="whatif_strength")  # fmt: skip
b1, b2 = st.columns(2)
if b2.button("Clear the edits", key="whatif_clear"):
    _reset_controls(pick)
    st.rerun()
if b1.button("Run the edit", key="whatif_run", disabled=not controls):
    with session.shown_errors("the edit"), st.spinner("Editing..."):
        result = whatif.edit(history, anchors, segments, steps=ddim_steps, strength=strength,
                             seed=0)  # fmt: skip
        st.session_state["whatif_result"] = {"series": result.series, "report": result.report,
                                             "scored": result.scored}  # fmt: skip
        with factory() as s, s.begin():
            append_event(s, actor=user.username, action="what_if_viewed",
                         entity="recommendation", entity_id=pick,
                         after={"anchors": len(anchors), "segments": len(segments),
                                "channels": sorted({a.channel for a in anchors}
                                                   | {g.channel for g in segments}),
                                "whatif_action": result.scored["action"]})  # fmt: skip

result = st.session_state["whatif_result"]
edited = original if result is None else result["series"]
st.subheader("Charted vs edited vitals" if result is not None else "Charted vitals")
cols = st.columns(len(channels))
for col, ch in zip(cols, channels, strict=True):
    col.caption(ch)
    col.line_chart(pd.DataFrame({"charted": original[ch], "edited": edited[ch]}), height=180)
table = pd.concat({"charted": original, "edited": edited}, axis=1).swaplevel(axis=1)
table.columns = [f"{ch} ({kind})" for ch, kind in table.columns]
st.dataframe(table[[f"{ch} ({k})" for ch in channels for k in ("charted", "edited")]],
             key="whatif_series")  # fmt: skip

st.subheader("SAFER's recommendation")
charted = None
with session.shown_errors("scoring the decision"):
    charted = whatif.score(history)
if charted is None:
    st.stop()
left, right = st.columns(2)
_panel(left, "As charted", charted)
if result is None:
    right.info("Add an anchor or a segment mean and run the edit to see the what-if.")
    proba = pd.DataFrame({"as charted": charted["probabilities"]})
else:
    _panel(right, "What-if", result["scored"])
    change = ("unchanged" if result["scored"]["action"] == charted["action"]
              else f"{charted['recommended']} -> {result['scored']['recommended']}")  # fmt: skip
    st.write(f"Recommendation: {change}")
    proba = pd.DataFrame({"as charted": charted["probabilities"],
                          "what-if": result["scored"]["probabilities"]})  # fmt: skip
proba.index = [action_label(a) for a in range(N_ACTIONS)]
st.bar_chart(proba, height=260)
st.dataframe(proba.T.round(3), key="whatif_proba")
