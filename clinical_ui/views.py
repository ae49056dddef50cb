"""Layouts shared by the pages: every table (:func:`table`) and one decision, the latter shown
by the decision page and the auditor's read-only view.

Only layout: every value comes from :func:`safer.store.decision_detail` and :mod:`safer.review`;
a missing value is written by :func:`safer.review.shown` (an em dash, "not charted" as its hint).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from safer.actions import FLUID_BINS, N_ACTIONS, VASO_BINS, describe_action, split_action
from safer.review import (
    MISSING,
    MISSING_HINT,
    TREND_PANELS,
    banner,
    bins_text,
    dose_range,
    doses_given,
    factor_lines,
    reason_in_words,
    recommendation_text,
    shown,
    trends,
)

#: pixels a table has on a 1440 px wide screen with the sidebar open (wide layout); a row
#: selection's checkbox column takes about 35 of them.
TABLE_WIDTH = 980


def _hours(first: float) -> alt.X:
    """The time axis all trend and dose charts share, from ``first`` (hours, negative) to the
    decision, so a lab last charted 8 h before does not look like the latest value."""
    return alt.X("hours:Q", title="hours before the decision",
                 scale=alt.Scale(domain=[float(first), 0.0], nice=False))  # fmt: skip


def table(
    frame: pd.DataFrame,
    *,
    formats: Mapping[str, str] | None = None,
    hint: str = MISSING_HINT,
    column_config: Mapping[str, Any] | None = None,
    widths: Mapping[str, int] | None = None,
    header_help: Mapping[str, str] | None = None,
    row_style: Callable[[pd.Series], list[str]] | None = None,
    **kwargs: Any,
):
    """``st.dataframe`` of ``frame`` with every cell written by :func:`safer.review.shown`.

    ``formats`` maps a column to its format spec (".1f", ".1%", "%Y-%m-%d %H:%M"). A missing
    cell reads as an em dash (the grid's placeholder, which it draws for every null cell
    whatever the formatting), and each column holding one gets ``"— = {hint}"`` as its header's
    help (added to any help in ``column_config``). The data stay numbers, so columns still sort
    as numbers. ``widths`` fixes columns' widths in pixels and ``header_help`` gives their
    header's tooltip (where a short header keeps its unit), so a table can be made to fit
    :data:`TABLE_WIDTH` (a test sums the widths). ``row_style`` gives a row's CSS
    (Styler.apply, axis=1); ``kwargs`` go to ``st.dataframe``, whose selection it returns.
    """
    formats = dict(formats or {})
    styler = frame.style.format(
        {c: (lambda v, f=formats.get(c, ""): shown(v, f)) for c in frame.columns}
    )
    if row_style is not None:
        styler = styler.apply(row_style, axis=1)
    config = {c: dict(v or {}) for c, v in (column_config or {}).items()}
    for column, width in (widths or {}).items():
        config.setdefault(column, {})["width"] = width
    for column, words in (header_help or {}).items():
        config.setdefault(column, {})["help"] = words
    for column in frame.columns[frame.isna().any().to_numpy()]:
        given = dict(config.get(column) or {})
        note = f"{MISSING} = {hint}"
        given["help"] = f"{given['help']}; {note}" if given.get("help") else note
        config[column] = given
    return st.dataframe(styler, column_config=config, placeholder=MISSING, **kwargs)


def header(detail: dict[str, Any]) -> None:
    st.title(f"Stay {detail['stay_id']} · decision at step {detail['step']}")
    when = detail["decision_time"]
    st.caption(
        (f"decision time {when:%Y-%m-%d %H:%M}" if when else "decision time unknown")
        + f" · status {detail['status']}"
        + (" · made on data since corrected" if detail["superseded"] else "")
    )
    items = banner(detail)
    for row in range(0, len(items), 4):
        cols = st.columns(4)
        for col, (label, value) in zip(cols, items[row : row + 4], strict=False):
            col.markdown(f"**{label}**  \n{value}", help=MISSING_HINT if value == MISSING else None)


def recommendation(detail: dict[str, Any]) -> None:
    """The recommendation as doses in clinical units, with the gate's reason in words."""
    action, dose_set = detail["action"], detail["prediction_set"]
    text = recommendation_text(action, dose_set)
    reason = reason_in_words(detail["method"], detail["reason"], action, dose_set,
                             detail["alpha"], max(detail["probabilities"]))  # fmt: skip
    with st.container(border=True):
        st.caption("Recommendation")
        if action >= 0:
            st.subheader(text)
        else:
            st.subheader("Defer to usual care")
            if dose_set:
                st.write(f"What the gate's set says: {text.removeprefix('defer: ')}.")
        st.write(reason)
        if dose_set and len(dose_set) > 1:
            st.write(f"Doses in the set ({len(dose_set)}): {dose_range(dose_set)}")
        gate = "no safety gate" if detail["method"] in (None, "none") else (
            f"gate {detail['method']}, alpha {detail['alpha']}")  # fmt: skip
        st.caption(f"{gate} · model {detail['model_hash'][:12]} · calibration "
                   f"{(detail['calibration_hash'] or 'none')[:12]}")  # fmt: skip


def _short(b) -> str:
    """A bin as a short axis label: none, <=0.08, 50-180, >530 (the unit is in the title)."""
    if b.index == 0:
        return "none"
    if b.open_ended:
        return f">{b.low:g}"
    return f"≤{b.high:g}" if b.low == 0 else f"{b.low:g}-{b.high:g}"


def probabilities(detail: dict[str, Any]) -> None:
    """The model's probabilities as a fluid x vasopressor grid labelled in clinical units."""
    rows = []
    in_set = set(detail["prediction_set"] or [])
    order_f = [_short(b) for b in FLUID_BINS]
    order_v = [_short(b) for b in VASO_BINS]
    for a in range(N_ACTIONS):
        f, v = split_action(a)
        rows.append({"IV fluid (mL/4h)": order_f[f], "vasopressor (ug/kg/min)": order_v[v],
                     "dose": bins_text([f], FLUID_BINS) + " / " + bins_text([v], VASO_BINS),
                     "probability": detail["probabilities"][a],
                     "in set": "in the set" if a in in_set else ""})  # fmt: skip
    frame = pd.DataFrame(rows)
    base = alt.Chart(frame).encode(
        x=alt.X(
            "vasopressor (ug/kg/min):N",
            sort=order_v,
            axis=alt.Axis(labelAngle=0, labelOverlap=False),
        ),
        y=alt.Y("IV fluid (mL/4h):N", sort=order_f),
    )
    heat = base.mark_rect().encode(
        color=alt.Color("probability:Q", scale=alt.Scale(scheme="blues")),
        tooltip=["dose", alt.Tooltip("probability:Q", format=".2f"), "in set"],
    )  # fmt: skip
    marks = base.mark_text(fontWeight="bold").encode(
        text=alt.condition(alt.datum["in set"] != "", alt.value("●"), alt.value(""))
    )
    st.caption("How often clinicians gave each dose to patients like this (the model's "
               "probabilities); ● marks the gate's set")  # fmt: skip
    st.altair_chart(heat + marks, height=260)


def trend_charts(detail: dict[str, Any]) -> None:
    """Trends in clinical units with reference ranges; sparse labs are points, not gaps."""
    data = trends(detail)
    doses = doses_given(detail)
    if data.empty:
        st.info("Nothing charted before this decision.")
        return
    hours = _hours(min(data["hours"].min(), doses["hours"].min() if not doses.empty else 0))
    cols = st.columns(len(TREND_PANELS))
    for col, panel in zip(cols, TREND_PANELS, strict=True):
        part = data[data["panel"] == panel]
        col.caption(", ".join(dict.fromkeys(part["label"])) or panel)
        if part.empty:
            col.write(MISSING_HINT)
            continue
        color = alt.Color(
            "label:N", legend=alt.Legend(orient="bottom", title=None, columns=1, labelLimit=240)
        )
        line = alt.Chart(part).mark_line(point=True).encode(
            x=hours, y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)), color=color,
            tooltip=["label", "hours", alt.Tooltip("value:Q", format=".3g")],
        )  # fmt: skip
        layers = [line]
        ranges = part.drop_duplicates("variable")
        for _, r in ranges.iterrows():
            for bound in ("low", "high"):
                if pd.notna(r[bound]):
                    layers.append(alt.Chart(pd.DataFrame({"y": [r[bound]]})).mark_rule(
                        strokeDash=[4, 4], color="gray").encode(y="y:Q"))  # fmt: skip
        legend_rows = part["variable"].nunique() - 1  # each legend row takes plot height
        col.altair_chart(alt.layer(*layers), height=200 + 24 * legend_rows)
    if doses.empty:
        st.caption("Doses given before the decision: none charted yet (first block).")
        return
    st.caption("Doses given in the blocks before the decision (the dose given for this "
               "decision is not shown)")  # fmt: skip
    c1, c2 = st.columns(2)
    panels = ((c1, "fluid_ml", "IV fluid (mL/4h)", ",.0f"),
              (c2, "vaso_ugkgmin", "vasopressor (ug/kg/min)", ".2f"))  # fmt: skip
    for col, column, title, fmt in panels:
        col.caption(title)
        if not (doses[column] > 0).any():
            col.write(f"none given in the {len(doses)} block(s) before the decision")
            continue
        bars = alt.Chart(doses).mark_bar(size=14).encode(
            x=hours, y=alt.Y(f"{column}:Q", title=None, axis=alt.Axis(format=fmt)),
            tooltip=["hours", alt.Tooltip(f"{column}:Q", format=".3g")],
        )  # fmt: skip
        col.altair_chart(bars, height=150)


RECENT_NOTES = 5  # notes with an expander of their own; older ones share one


def _note_title(note: dict[str, Any]) -> str:
    return f"{note['note_time']:%Y-%m-%d %H:%M} (step {note['step']})"


def notes(detail: dict[str, Any]) -> None:
    """Notes before the decision, newest first: the newest open, the next few each in an
    expander, older ones together in one (a long stay's page stays light)."""
    newest_first = list(reversed(detail["notes"]))
    st.subheader(f"Notes charted before the decision ({len(newest_first)})")
    for i, note in enumerate(newest_first[:RECENT_NOTES]):
        with st.expander(_note_title(note), expanded=i == 0):
            st.text(note["text"])
    older = newest_first[RECENT_NOTES:]
    if older:
        with st.expander(f"{len(older)} earlier note(s), newest first"):
            st.text("\n\n".join(f"— {_note_title(n)}\n{n['text']}" for n in older))


def saved_review(detail: dict[str, Any]) -> None:
    """The saved review, read-only, with who and when."""
    r = detail["review"]
    words = {"accept": "Accepted", "override": "Chose a dose", "defer": "Deferred"}
    reason = " — ".join(x for x in (r.get("reason_words"), r["reason"]) if x)
    st.success(
        f"{words.get(r['decision'], r['decision'])} by {r['reviewer']} at "
        f"{r['created_at']:%Y-%m-%d %H:%M} UTC: {r['chosen_dose']}"
        + (f". Reason: {reason}" if reason else "")
    )


def top_factors(detail: dict[str, Any], table: pd.DataFrame | None, note: str | None) -> None:
    """The model's top factors (:func:`safer.decisions.top_factors`), or why there are none."""
    with st.container(border=True):
        st.caption("The model's top factors")
        if table is None:
            st.write(note)
            return
        dose = describe_action(table.attrs["action"])
        which = "the recommended dose" if detail["action"] >= 0 else "the model's most likely dose"
        st.write(f"What the probability of {which} ({dose}) depends on most: each feature in "
                 "turn set to its training average over the whole stay.")  # fmt: skip
        for line in factor_lines(table):
            st.markdown(f"- {line}")
        st.caption("A sensitivity check of the model, not a cause: features interact, and "
                   "labs never charted in this stay are left out.")  # fmt: skip


def decision(
    detail: dict[str, Any], factors: tuple[pd.DataFrame | None, str | None] | None = None
) -> None:
    """Everything about one decision except the review form; ``factors`` is the model's top
    factors table and a note (None: not shown, e.g. the auditor's view)."""
    header(detail)
    left, right = st.columns([1, 1])
    with left:
        recommendation(detail)
        if factors is not None:
            top_factors(detail, *factors)
    with right:
        probabilities(detail)
    st.subheader("Trends up to the decision")
    trend_charts(detail)
    notes(detail)
