"""Quantities charted in free-text ICU notes, parsed into numbers.

ICU progress notes carry much of their information as numbers in a few fixed idioms ("MAP 65",
"Levo at 0.09", "Lactate up 2.0 -> 2.6", "UOP ~15 cc/hr", "Net +1.3L since admission"). A
frozen sentence encoder barely separates "Levo at 0.09" from "Levo at 0.29" (see
``docs/benchmarks/safe_gate.md``), so this module reads them as numbers: one column per
quantity, ``NaN`` where the note does not mention it. The numbers keep the note's charting time
(a row's note is charted before its decision; the models check ``note_time <= charttime``).

Sentences that state a plan ("Plan: titrate pressors to MAP > 65") are read for the plan only
(ordinal pressor and fluid intent), never as measurements.

The parser knows the abbreviations of the simulator's notes and common ICU charting (MAP, HR,
levo / levophed / norepi / NE / norepinephrine, GCS, FiO2, SpO2 / sats, UOP / UO, Lac /
lactate, Cr, plts, WBC, Tbili, pH, Tmax, IVF, net balance, DNR / full code). On real notes it
finds fewer values, never wrong units: every pattern names its unit.

Examples
--------
>>> q = parse_note_quantities(["MAP 58, HR 112. Levo at 0.09. Lactate up 2.0 -> 2.6.", ""])
>>> dict(zip(NOTE_QUANTITIES[:4], q[0, :4].tolist()))
{'note_map': 58.0, 'note_hr': 112.0, 'note_vaso': 0.09, 'note_gcs': nan}
>>> float(q[0, NOTE_QUANTITIES.index("note_lactate")]), bool(np.isnan(q[1]).all())
(2.6, True)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "NOTE_QUANTITIES",
    "NOTE_ONLY",
    "FEATURE_OF",
    "parse_note_quantities",
    "quantity_features",
    "fuse_with_features",
    "note_readings",
]

#: The parsed quantities, in column order (units in the comments of :data:`_RULES`).
NOTE_QUANTITIES: list[str] = [
    "note_map",  # mmHg
    "note_hr",  # bpm
    "note_vaso",  # norepinephrine ug/kg/min (0 when "off pressors")
    "note_gcs",  # points
    "note_vent",  # 1 intubated / ventilated, 0 nasal cannula, high flow or room air
    "note_fio2",  # fraction
    "note_spo2",  # %
    "note_uop",  # urine output mL/h
    "note_lactate",  # mmol/L, the latest value
    "note_lactate_change",  # mmol/L, latest minus the previous value given in the note
    "note_ivf",  # IV fluid mL in the last 4 h
    "note_balance",  # net fluid balance since admission, mL
    "note_creatinine",  # mg/dL
    "note_platelets",  # x10^9/L
    "note_wbc",  # x10^9/L
    "note_bili",  # total bilirubin mg/dL
    "note_ph",  # arterial pH
    "note_temp",  # degC
    "note_plan_pressor",  # 0 none / 1 low-dose or wean / 2 titrate up
    "note_plan_fluid",  # 0 hold / 1 maintenance / 2 bolus
    "note_dnr",  # 1 DNR/DNI, 0 full code
]
_COL = {name: i for i, name in enumerate(NOTE_QUANTITIES)}

_SENTENCES = re.compile(r"(?<=\.)\s+|\n+")
_NUM = r"(\d+(?:\.\d+)?)"
_TENS = re.compile(r"\b(low|mid|high) (\d{1,2})0s\b", re.I)
_TENS_OFFSET = {"low": 2.0, "mid": 5.0, "high": 8.0}
_PLAN = re.compile(r"^\s*(plan\b|a/p\b)", re.I)
_PRESSOR = r"(?:norepinephrine|norepi|levophed|levo|NE)"


def _first(pattern: str, flags=re.I) -> Callable[[str], float | None]:
    rx = re.compile(pattern, flags)

    def read(sentence: str) -> float | None:
        m = rx.search(sentence)
        if m is None:
            return None
        return float(next(g for g in m.groups() if g is not None))

    return read


def _map(sentence: str) -> float | None:
    if not re.search(r"\bMAPs?\b", sentence):
        return None
    tens = _TENS.search(sentence)
    if tens:
        return 10.0 * float(tens.group(2)) + _TENS_OFFSET[tens.group(1).lower()]
    m = re.search(r"\bMAPs?\b\D{0,20}?(\d{2,3})\b", sentence)
    return float(m.group(1)) if m else None


def _vaso(sentence: str) -> float | None:
    if re.search(r"\b(off pressors|no vasopressor|not on pressors)\b", sentence, re.I):
        return 0.0
    m = re.search(rf"\b{_PRESSOR}\b\D{{0,6}}?(\d+\.\d+)", sentence, re.I)
    return float(m.group(1)) if m else None


def _fio2(sentence: str) -> float | None:
    if re.search(r"\broom air\b", sentence, re.I):
        return 0.21
    m = re.search(r"\bFiO2 (0\.\d+)\b", sentence)
    if m:
        return float(m.group(1))
    m = re.search(r"\b(?:FiO2|HFNC) (\d{2,3})%", sentence)
    return float(m.group(1)) / 100.0 if m else None


def _uop(sentence: str) -> float | None:
    m = re.search(r"\b(?:UOP|UO)\b\D{0,12}?(\d+) mL(?: over |/)4h", sentence, re.I)
    if m:
        return float(m.group(1)) / 4.0
    m = re.search(r"~?(\d+) (?:cc|mL)/h", sentence, re.I)
    return float(m.group(1)) if m else None


def _lactate_values(sentence: str) -> tuple[float, float] | None:
    """(latest, change) from a lactate sentence; change is NaN without a previous value."""
    if not re.search(r"\b(lactate|lac)\b", sentence, re.I):
        return None
    arrow = re.search(r"(\d+\.\d) -> (\d+\.\d)", sentence)
    if arrow:
        before, after = float(arrow.group(1)), float(arrow.group(2))
        return after, after - before
    was = re.search(r"\((\d+\.\d), was (\d+\.\d)\)", sentence)
    if was:
        now, before = float(was.group(1)), float(was.group(2))
        return now, now - before
    m = re.search(r"(\d+\.\d)", sentence)
    return (float(m.group(1)), np.nan) if m else None


def _ivf(sentence: str) -> float | None:
    m = re.search(r"\breceived (\d+(?:\.\d+)?)L IVF\b", sentence, re.I)
    if m:
        return 1000.0 * float(m.group(1))
    m = re.search(r"\bIVF ~?(\d+) mL\b", sentence, re.I)
    if m:
        return float(m.group(1))
    if re.search(r"\b(minimal IVF|fluids held)\b", sentence, re.I):
        return 0.0
    return None


def _balance(sentence: str) -> float | None:
    m = re.search(r"\bnet ([+-])(\d+(?:\.\d+)?)L\b", sentence, re.I)
    if not m:
        return None
    return (1.0 if m.group(1) == "+" else -1.0) * 1000.0 * float(m.group(2))


def _tiers(*tiers: tuple[float, str]) -> Callable[[str], float | None]:
    """A reader giving the value of the first tier whose phrases occur in the sentence.

    Each tier is ``(value, pattern)``; patterns match case-insensitively unless they turn it
    off inline (``(?-i:...)``), as "DNR" does so that "dnr" in free text is not read.

    >>> plan = _tiers((2.0, r"\\buptitrate\\b"), (0.0, r"\\bno pressors\\b"))
    >>> plan("Plan: uptitrate."), plan("No pressors needed."), plan("Stable.")
    (2.0, 0.0, None)
    """
    compiled = [(value, re.compile(pattern, re.I)) for value, pattern in tiers]

    def read(sentence: str) -> float | None:
        return next((value for value, rx in compiled if rx.search(sentence)), None)

    return read


_vent = _tiers(
    (1.0, r"\b(intubated|on MV|remains on MV|vent:)"),
    (0.0, r"\b(NC|room air|HFNC|high flow)\b"),
)
_plan_pressor = _tiers(
    (2.0, r"\b(titrate pressors|uptitrate|continue norepi)\b"),
    (1.0, r"\b(low-dose pressor|wean levo)\b"),
    (0.0, r"\b(no pressors planned|pressors if)\b"),
)
_plan_fluid = _tiers(
    (2.0, r"\b(additional 1L bolus|aggressive fluid|bolus x2)\b"),
    (1.0, r"\b(maintenance IVF|judicious fluids|small bolus)\b"),
    (0.0, r"\b(hold IVF|fluid restrict|KVO)\b"),
)
_dnr = _tiers((1.0, r"(?-i:\bDNR\b)"), (0.0, r"\bfull code\b"))


# measurement readers: never applied to a plan sentence
_RULES: dict[str, Callable[[str], float | None]] = {
    "note_map": _map,
    "note_hr": _first(r"\b(?:HR (\d{2,3})|tachy (\d{2,3}))\b"),
    "note_vaso": _vaso,
    "note_gcs": _first(r"\bGCS (\d{1,2})T?\b"),
    "note_vent": _vent,
    "note_fio2": _fio2,
    "note_spo2": _first(r"\b(?:SpO2|sats) (\d{2,3})%"),
    "note_uop": _uop,
    "note_ivf": _ivf,
    "note_balance": _balance,
    "note_creatinine": _first(r"\bCr (\d+\.\d)\b"),
    "note_platelets": _first(r"\bplts (\d+)\b"),
    "note_wbc": _first(r"\bWBC (\d+)\b"),
    "note_bili": _first(r"\bTbili (\d+\.\d)\b"),
    "note_ph": _first(r"\bpH (\d\.\d{1,2})\b"),
    "note_temp": _first(
        rf"\b(?:febrile to {_NUM}|tmax {_NUM}|hypothermic {_NUM}|temp {_NUM})", re.I
    ),
    "note_dnr": _dnr,
}
_PLAN_RULES = {"note_plan_pressor": _plan_pressor, "note_plan_fluid": _plan_fluid}


def _parse_one(note: str, out: np.ndarray) -> None:
    for sentence in _SENTENCES.split(note):
        sentence = sentence.strip()
        if not sentence:
            continue
        if _PLAN.match(sentence):
            for name, rule in _PLAN_RULES.items():
                value = rule(sentence)
                if value is not None:
                    out[_COL[name]] = value
            continue
        for name, rule in _RULES.items():
            if np.isnan(out[_COL[name]]):
                value = rule(sentence)
                if value is not None:
                    out[_COL[name]] = value
        if np.isnan(out[_COL["note_lactate"]]):
            lac = _lactate_values(sentence)
            if lac is not None:
                out[_COL["note_lactate"]], out[_COL["note_lactate_change"]] = lac


def parse_note_quantities(notes: Sequence[str | None]) -> np.ndarray:
    """``(len(notes), len(NOTE_QUANTITIES))`` float array of the quantities each note states.

    Empty or missing notes give a row of ``NaN``. Distinct texts are parsed once.

    Examples
    --------
    >>> q = parse_note_quantities(["Off pressors. Plan: uptitrate levo for MAP goal; KVO only."])
    >>> [q[0, NOTE_QUANTITIES.index(c)] for c in ("note_vaso", "note_map", "note_plan_pressor")]
    [np.float64(0.0), np.float64(nan), np.float64(2.0)]
    """
    out = np.full((len(notes), len(NOTE_QUANTITIES)), np.nan)
    seen: dict[str, np.ndarray] = {}
    for i, note in enumerate(notes):
        if not isinstance(note, str) or not note.strip():
            continue
        row = seen.get(note)
        if row is None:
            row = np.full(len(NOTE_QUANTITIES), np.nan)
            _parse_one(note, row)
            seen[note] = row
        out[i] = row
    return out


def quantity_features(notes: Sequence[str | None], usable: np.ndarray | None = None) -> np.ndarray:
    """Parsed quantities as model features: log-scaled where skewed, ``NaN`` where unusable.

    ``usable`` (bool, one per note) marks the notes a decision may read (charted before it);
    the others become ``NaN`` rows. Urine output, IV fluid, creatinine, platelets, WBC and
    bilirubin are ``log1p``-transformed (their clinical ranges span orders of magnitude).

    Examples
    --------
    >>> q = quantity_features(["UOP ~15 cc/hr.", "UOP ~15 cc/hr."], usable=np.array([True, False]))
    >>> round(float(q[0, NOTE_QUANTITIES.index("note_uop")]), 3), bool(np.isnan(q[1]).all())
    (2.773, True)
    """
    q = parse_note_quantities(notes)
    for name in _LOG_COLUMNS:
        j = _COL[name]
        q[:, j] = np.log1p(np.maximum(q[:, j], 0.0))
    if usable is not None:
        q[~np.asarray(usable, dtype=bool)] = np.nan
    return q


_LOG_COLUMNS = (
    "note_uop", "note_ivf", "note_creatinine", "note_platelets", "note_wbc", "note_bili",
)  # fmt: skip


#: Quantity -> the cohort feature it is a second reading of, and the factor to its unit.
FEATURE_OF: dict[str, tuple[str, float]] = {
    "note_map": ("MeanBP", 1.0),
    "note_hr": ("HR", 1.0),
    "note_vaso": ("max_dose_vaso", 1.0),
    "note_gcs": ("GCS", 1.0),
    "note_vent": ("mechvent", 1.0),
    "note_fio2": ("FiO2_1", 1.0),
    "note_spo2": ("SpO2", 1.0),
    "note_uop": ("output_4hourly", 4.0),  # mL/h -> mL/4h
    "note_lactate": ("Arterial_lactate", 1.0),
    "note_ivf": ("input_4hourly", 1.0),
    "note_balance": ("cumulated_balance", 1.0),
    "note_creatinine": ("Creatinine", 1.0),
    "note_platelets": ("Platelets_count", 1.0),
    "note_wbc": ("WBC_count", 1.0),
    "note_bili": ("Total_bili", 1.0),
    "note_ph": ("Arterial_pH", 1.0),
    "note_temp": ("Temp_C", 1.0),
}
#: Quantities without a charted counterpart (the plan, code status, the lactate trend).
NOTE_ONLY = [q for q in NOTE_QUANTITIES if q not in FEATURE_OF]


def note_readings(quantities: np.ndarray,
                  feature_names: Sequence[str]) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """The note's readings of charted quantities, in the features' units, as their own columns
    (``note:<feature>``), plus the lactate trend; the plan's intent and code status left out.

    Unlike :func:`fuse_with_features`, a reading does not overwrite the charted value: a
    state decoder then learns how far each source spreads within a state (in the simulator a
    note is written from the state itself, so its readings spread less than the charts').

    >>> q = parse_note_quantities(["MAP 58. Plan: titrate pressors to MAP > 65; KVO only."])
    >>> values, names = note_readings(q, ["MeanBP", "HR"])
    >>> names, values[0].tolist()
    (['note:MeanBP', 'note:HR', 'note_lactate_change'], [58.0, nan, nan])
    """
    pairs = [(q, f, k) for q, (f, k) in FEATURE_OF.items() if f in feature_names]
    cols = [quantities[:, _COL[q]] * k for q, _, k in pairs]
    cols.append(quantities[:, _COL["note_lactate_change"]])
    names = [f"note:{f}" for _, f, _ in pairs] + ["note_lactate_change"]
    return np.stack(cols, axis=1), names


def fuse_with_features(features: np.ndarray, feature_names: Sequence[str],
                       quantities: np.ndarray) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """Charted features with the note's reading put in where the note states the quantity,
    plus the note-only quantities as extra columns.

    ``features`` (n, F) in clinical units (``NaN`` = not charted), ``quantities`` (n, Q) from
    :func:`parse_note_quantities` (rows of unusable notes all ``NaN``). A note's number is the
    clinician's considered reading of the same quantity, so it replaces the charted value of
    that step; where the note is silent the charted value stays.

    Examples
    --------
    >>> q = parse_note_quantities(["MAP 58. Plan: titrate pressors to MAP > 65; KVO only."])
    >>> fused, names = fuse_with_features(np.array([[70.0, 88.0]]), ["MeanBP", "HR"], q)
    >>> fused[0, :2].tolist(), names[2:4]
    ([58.0, 88.0], ['note_lactate_change', 'note_plan_pressor'])
    """
    out = np.array(features, dtype=float, copy=True)
    names = list(feature_names)
    for quantity, (feature, factor) in FEATURE_OF.items():
        if feature in names:
            value = quantities[:, _COL[quantity]] * factor
            j = names.index(feature)
            out[:, j] = np.where(np.isnan(value), out[:, j], value)
    extra = quantities[:, [_COL[q] for q in NOTE_ONLY]]
    return np.concatenate([out, extra], axis=1), names + NOTE_ONLY
