"""The cohort table: one row per ICU stay and 4-hour step, in long format.

Columns
-------
keys        ``stay_id`` (int), ``step`` (int, 0..T-1, consecutive), ``charttime`` (datetime of
            the step's start)
static      ``age`` (years), ``gender`` (0 = male, 1 = female), ``weight_kg``, ``re_admission``
            (0/1); constant within a stay
features    the 47 ICU-Sepsis / AI Clinician state features in clinical units, in the order of
            :data:`FEATURES` (``age``, ``gender`` and ``re_admission`` are shared with the static
            block); ``NaN`` marks a value that was not measured
actions     ``fluid_bin``, ``vaso_bin`` (0..4) and ``action = 5 * fluid_bin + vaso_bin``: what the
            clinician gave in the 4 hours from ``charttime``
notes       ``note`` (text, ``""`` when nothing was charted) and ``note_time`` (``NaT`` when empty)
outcome     ``died`` (0/1), constant within a stay
optional    ``fluid_ml`` / ``vaso_ugkgmin`` (the dose actually given), and hidden simulator truth
            in columns prefixed ``true_``, which no model may read

Values must be finite and inside the physiological limits of :data:`LIMITS` (a value outside
them is a unit mix-up or an entry error: one HR of 1e9 would otherwise flatten the feature's
scaling for every row); ``NaN`` (not measured) is allowed where a column may be missing. Times
are naive UTC: :func:`validate` refuses time-zone-aware columns, :func:`safer.cohorts.read_cohort`
converts them to naive UTC.

The decision time of a step is its ``charttime``: the dose for the next 4 hours is chosen then.
A note is usable for that decision only if ``note_time <= charttime`` (:func:`validate` rejects
any other) — the reference implementation matched notes by nearest time and leaked notes written
after the decision, discharge summaries included.

Examples
--------
>>> from safer.cohorts import simulate_cohort, validate
>>> cohort = simulate_cohort(n_stays=20, seed=0, progress=False)
>>> validate(cohort) is cohort
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from safer.actions import N_ACTIONS, N_LEVELS
from safer.errors import CohortValidationError, SaferError

__all__ = [
    "KEYS",
    "STATIC",
    "FEATURES",
    "ACTION_COLUMNS",
    "NOTE_COLUMNS",
    "OUTCOME",
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "TRUE_PREFIX",
    "STEP_HOURS",
    "LIMITS",
    "model_columns",
    "model_frame",
    "numeric_matrix",
    "validate",
    "describe_schema",
]

STEP_HOURS = 4
KEYS = ["stay_id", "step", "charttime"]
STATIC = ["age", "gender", "weight_kg", "re_admission"]
FEATURES = [
    "gender", "mechvent", "max_dose_vaso", "re_admission", "age", "Weight_kg", "GCS", "HR",
    "SysBP", "MeanBP", "DiaBP", "RR", "Temp_C", "FiO2_1", "Potassium", "Sodium", "Chloride",
    "Glucose", "Magnesium", "Calcium", "Hb", "WBC_count", "Platelets_count", "PTT", "PT",
    "Arterial_pH", "paO2", "paCO2", "Arterial_BE", "HCO3", "Arterial_lactate", "SOFA", "SIRS",
    "Shock_Index", "PaO2_FiO2", "cumulated_balance", "SpO2", "BUN", "Creatinine", "SGOT", "SGPT",
    "Total_bili", "INR", "input_total", "input_4hourly", "output_total", "output_4hourly",
]  # fmt: skip
ACTION_COLUMNS = ["fluid_bin", "vaso_bin", "action"]
NOTE_COLUMNS = ["note", "note_time"]
OUTCOME = "died"
TRUE_PREFIX = "true_"
OPTIONAL_COLUMNS = ["fluid_ml", "vaso_ugkgmin"]

#: Physiological limits per numeric column, in the schema's units: values outside them cannot
#: be real measurements (they are wide on purpose; the normal ranges are far narrower).
LIMITS: dict[str, tuple[float, float]] = {
    "gender": (0, 1), "mechvent": (0, 1), "re_admission": (0, 1),
    "max_dose_vaso": (0, 100),  # ug/kg/min, norepinephrine-equivalent
    "age": (0, 130), "Weight_kg": (0.3, 700), "weight_kg": (0.3, 700),  # years, kg
    "GCS": (3, 15), "HR": (0, 350), "SysBP": (0, 400), "MeanBP": (0, 350),  # /min, mmHg
    "DiaBP": (0, 300), "RR": (0, 150), "Temp_C": (10, 50), "FiO2_1": (0.1, 1),  # fraction
    "Potassium": (0.5, 15), "Sodium": (80, 220), "Chloride": (40, 200),  # mmol/L
    "Glucose": (1, 3000), "Magnesium": (0, 20), "Calcium": (0, 30),  # mg/dL
    "Hb": (0, 30), "WBC_count": (0, 1000), "Platelets_count": (0, 5000),  # g/dL, 10^9/L
    "PTT": (0, 300), "PT": (0, 300), "Arterial_pH": (6.3, 8.0),  # s, s, pH
    "paO2": (0, 1000), "paCO2": (0, 300), "Arterial_BE": (-50, 50), "HCO3": (0, 100),
    "Arterial_lactate": (0, 50), "SOFA": (0, 24), "SIRS": (0, 4),  # mmol/L, points
    "Shock_Index": (0, 20), "PaO2_FiO2": (0, 5000),  # HR/SysBP, mmHg
    "cumulated_balance": (-200_000, 200_000), "SpO2": (0, 100),  # mL, %
    "BUN": (0, 500), "Creatinine": (0, 50), "SGOT": (0, 50_000), "SGPT": (0, 50_000),
    "Total_bili": (0, 150), "INR": (0, 30),  # mg/dL, U/L, mg/dL, ratio
    "input_total": (0, 1_000_000), "input_4hourly": (0, 100_000),  # mL
    "output_total": (0, 1_000_000), "output_4hourly": (0, 100_000),  # mL
    "fluid_ml": (0, 100_000), "vaso_ugkgmin": (0, 100),  # the doses actually given
}  # fmt: skip


def _unique(cols: list[str]) -> list[str]:
    return list(dict.fromkeys(cols))


REQUIRED_COLUMNS = _unique(KEYS + STATIC + FEATURES + ACTION_COLUMNS + NOTE_COLUMNS + [OUTCOME])

_INTEGER_COLUMNS = ["stay_id", "step", "fluid_bin", "vaso_bin", "action", OUTCOME]
_BINARY_COLUMNS = ["gender", "re_admission", OUTCOME]
_DATETIME_COLUMNS = ["charttime", "note_time"]
_NUMERIC_COLUMNS = _unique(STATIC + FEATURES)
_NEVER_MISSING = _unique(KEYS + STATIC + ACTION_COLUMNS + [OUTCOME])
_CONSTANT_PER_STAY = _unique(STATIC + [OUTCOME])
_MAX_EXAMPLES = 5


def model_columns(df: pd.DataFrame) -> list[str]:
    """Columns a model may read: everything except hidden ``true_*`` simulator truth."""
    return [c for c in df.columns if not str(c).startswith(TRUE_PREFIX)]


def model_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without the columns a model may not read (:func:`model_columns`), in their order.

    A new frame (pandas copies on write, so no data is copied). The columns are picked by
    position: selecting them by name costs several times more on a stay's few rows, which is
    where one decision spends its time.

    >>> model_frame(pd.DataFrame({"a": [1], "true_state": [7], "b": [2]})).columns.tolist()
    ['a', 'b']
    """
    keep = [i for i, c in enumerate(df.columns.tolist()) if not str(c).startswith(TRUE_PREFIX)]
    return df.copy(deep=False) if len(keep) == df.shape[1] else df.take(keep, axis=1)


def numeric_matrix(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The named columns of ``df`` as one float64 array (rows x columns), NaN where missing.

    The values of ``df[columns].to_numpy(dtype=np.float64)``, the columns picked by position
    (cheaper on a few rows: see :func:`model_frame`). Every column must be present, once.

    >>> df = pd.DataFrame({"a": [1, 2], "b": [0.5, np.nan], "c": ["x", "y"]})
    >>> numeric_matrix(df, ["b", "a"]).tolist()
    [[0.5, 1.0], [nan, 2.0]]
    """
    names = df.columns.tolist()
    where = {c: i for i, c in enumerate(names)}  # the last of a name given twice
    missing = [c for c in columns if c not in where]
    if missing:
        raise SaferError(
            f"cohort is missing columns {missing}; see safer.cohorts.schema.REQUIRED_COLUMNS"
        )
    twice = [c for c in columns if names.count(c) > 1] if len(where) < len(names) else []
    if twice:
        raise SaferError(f"cohort has columns {twice} more than once; give each column one name")
    return df.take([where[c] for c in columns], axis=1).to_numpy(dtype=np.float64)


def describe_schema() -> str:
    """A plain-text description of the expected cohort layout."""
    return (__doc__ or "").split("Examples")[0].strip()


def validate(df: pd.DataFrame) -> pd.DataFrame:
    """Check a cohort table against the schema and return it unchanged.

    Every problem is collected first, then raised together in one
    :class:`~safer.errors.CohortValidationError` whose message lists each one and how to fix it.

    Parameters
    ----------
    df : pandas.DataFrame
        The cohort table, long format (one row per stay and step).

    Returns
    -------
    pandas.DataFrame
        ``df`` itself, so ``validate`` can wrap any entry point.

    Raises
    ------
    CohortValidationError
        Missing columns, wrong dtypes, missing keys, actions outside 0..24 or inconsistent with
        their bins, duplicated or non-consecutive steps, notes charted after the decision time,
        outcome or static columns that change within a stay.
    """
    if not isinstance(df, pd.DataFrame):
        raise CohortValidationError([f"expected a pandas DataFrame, got {type(df).__name__}"])
    problems: list[str] = []
    if df.empty:
        problems.append("the table has no rows; simulate one with `safer cohort simulate`")

    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        problems.append(
            f"missing columns {missing}; see safer.cohorts.schema.REQUIRED_COLUMNS "
            "(features are named as in safer.cohorts.schema.FEATURES)"
        )
    if df.columns.duplicated().any():
        dup = sorted(set(df.columns[df.columns.duplicated()]))
        problems.append(f"duplicated column names {dup}; keep one of each")
        raise CohortValidationError(problems)

    problems += _dtype_problems(df)
    if problems:  # row-level checks need sane columns and dtypes
        raise CohortValidationError(problems)

    problems += _missing_value_problems(df)
    problems += _value_problems(df)
    problems += _action_problems(df)
    problems += _step_problems(df)
    problems += _note_problems(df)
    problems += _per_stay_problems(df)
    if problems:
        raise CohortValidationError(problems)
    return df


def _dtype_problems(df: pd.DataFrame) -> list[str]:
    """Dtype problems of the columns that are present (absent ones are reported already)."""
    problems = []
    for col in (c for c in _INTEGER_COLUMNS if c in df.columns):
        s = df[col]
        if ptypes.is_bool_dtype(s):
            continue
        if not ptypes.is_integer_dtype(s):
            if ptypes.is_float_dtype(s) and s.dropna().eq(s.dropna().round()).all():
                continue  # integral floats (e.g. read back from CSV with gaps) are accepted
            problems.append(
                f"column {col!r} must hold integers, got dtype {s.dtype}; "
                f"convert with df[{col!r}] = df[{col!r}].astype('int64')"
            )
    for col in (c for c in _NUMERIC_COLUMNS if c in df.columns):
        s = df[col]
        if not (ptypes.is_numeric_dtype(s) or ptypes.is_bool_dtype(s)):
            problems.append(
                f"column {col!r} must be numeric (NaN for not measured), got dtype {s.dtype}; "
                f"convert with pd.to_numeric(df[{col!r}], errors='coerce') after checking why"
            )
    for col in (c for c in _DATETIME_COLUMNS if c in df.columns):
        if not ptypes.is_datetime64_any_dtype(df[col]):
            problems.append(
                f"column {col!r} must be a datetime, got dtype {df[col].dtype}; "
                f"convert with pd.to_datetime(df[{col!r}])"
            )
        elif getattr(df[col].dt, "tz", None) is not None:
            problems.append(
                f"column {col!r} holds time-zone-aware times ({df[col].dt.tz}); times are naive "
                f"UTC: convert with df[{col!r}] = df[{col!r}].dt.tz_convert('UTC')"
                ".dt.tz_localize(None) (read_cohort does this for files)"
            )
    if "note" not in df.columns:
        return problems
    note = df["note"]
    if not (ptypes.is_string_dtype(note) or ptypes.is_object_dtype(note)):
        problems.append(f"column 'note' must hold text, got dtype {note.dtype}")
    else:
        bad = note.map(lambda v: not isinstance(v, str) and not pd.isna(v))
        if bad.any():
            problems.append(
                f"column 'note' holds {int(bad.sum())} non-text values; use '' for no note"
            )
    return problems


def _missing_value_problems(df: pd.DataFrame) -> list[str]:
    problems = []
    for col in _NEVER_MISSING:
        n = int(df[col].isna().sum())
        if n:
            problems.append(f"column {col!r} has {n} missing values; it may never be missing")
    for col in _BINARY_COLUMNS:
        vals = df[col].dropna()
        bad = ~vals.isin([0, 1])
        if bad.any():
            problems.append(f"column {col!r} must be 0 or 1; found {_examples(vals[bad].unique())}")
    return problems


def _value_problems(df: pd.DataFrame) -> list[str]:
    """Infinite values and values outside :data:`LIMITS`, per column."""
    problems = []
    for col, (low, high) in LIMITS.items():
        if col not in df.columns or ptypes.is_bool_dtype(df[col]):
            continue
        values = pd.to_numeric(df[col], errors="coerce").astype(float)
        infinite = np.isinf(values)
        if infinite.any():
            problems.append(
                f"column {col!r} holds {int(infinite.sum())} infinite values (stays "
                f"{_examples(df.loc[infinite, 'stay_id'].unique())}); use NaN for not measured"
            )
        outside = values.notna() & ~infinite & ((values < low) | (values > high))
        if outside.any():
            problems.append(
                f"column {col!r} has {int(outside.sum())} values outside its physiological "
                f"limits {low:g}..{high:g} (e.g. {_examples(values[outside].unique())}, stays "
                f"{_examples(df.loc[outside, 'stay_id'].unique())}); a unit mix-up or an entry "
                "error? Correct them or set them to NaN (limits: safer.cohorts.schema.LIMITS)"
            )
    return problems


def _action_problems(df: pd.DataFrame) -> list[str]:
    problems = []
    a, f, v = df["action"], df["fluid_bin"], df["vaso_bin"]
    out = (a < 0) | (a >= N_ACTIONS)
    if out.any():
        problems.append(
            f"{int(out.sum())} rows have an action outside 0..{N_ACTIONS - 1} "
            f"(e.g. {_examples(a[out].unique())}); action = 5 * fluid_bin + vaso_bin"
        )
    for name, s in (("fluid_bin", f), ("vaso_bin", v)):
        bad = (s < 0) | (s >= N_LEVELS)
        if bad.any():
            problems.append(
                f"{int(bad.sum())} rows have {name} outside 0..{N_LEVELS - 1} "
                f"(e.g. {_examples(s[bad].unique())})"
            )
    mismatch = a != N_LEVELS * f + v
    if mismatch.any():
        problems.append(
            f"{int(mismatch.sum())} rows have action != 5 * fluid_bin + vaso_bin; "
            "recompute it with safer.actions.action_id"
        )
    return problems


def _step_problems(df: pd.DataFrame) -> list[str]:
    problems = []
    dup = df.duplicated(["stay_id", "step"], keep=False)
    if dup.any():
        stays = df.loc[dup, "stay_id"].unique()
        problems.append(
            f"{int(dup.sum())} rows share a (stay_id, step) with another row "
            f"(stays {_examples(stays)}); each stay has one row per step"
        )
        return problems
    g = df.groupby("stay_id", sort=False)["step"]
    size, lo, hi = g.size(), g.min(), g.max()
    gaps = (lo != 0) | (hi != size - 1)
    if gaps.any():
        problems.append(
            f"{int(gaps.sum())} stays do not number their steps 0, 1, ..., T-1 "
            f"(stays {_examples(size.index[gaps])}); renumber with "
            "df.groupby('stay_id').cumcount() after sorting by charttime"
        )
    ordered = df.sort_values(["stay_id", "step"])
    later = ordered.groupby("stay_id", sort=False)["charttime"].diff()
    backwards = later <= pd.Timedelta(0)
    if backwards.any():
        stays = ordered.loc[backwards, "stay_id"].unique()
        problems.append(
            f"charttime does not increase with step in {len(stays)} stays "
            f"(stays {_examples(stays)})"
        )
    return problems


def _note_problems(df: pd.DataFrame) -> list[str]:
    problems = []
    future = df["note_time"] > df["charttime"]
    if future.any():
        stays = df.loc[future, "stay_id"].unique()
        problems.append(
            f"{int(future.sum())} notes are charted after their step's decision time "
            f"(note_time > charttime; stays {_examples(stays)}); a note may only inform "
            "decisions taken after it was written: attach it to a later step or drop it"
        )
    has_text = df["note"].fillna("").str.len() > 0
    undated = has_text & df["note_time"].isna()
    if undated.any():
        problems.append(
            f"{int(undated.sum())} notes have text but no note_time; "
            "a note without a time cannot be checked for leakage"
        )
    return problems


def _per_stay_problems(df: pd.DataFrame) -> list[str]:
    problems = []
    nunique = df.groupby("stay_id", sort=False)[_CONSTANT_PER_STAY].nunique(dropna=False)
    for col in _CONSTANT_PER_STAY:
        varying = nunique.index[nunique[col] > 1]
        if len(varying):
            what = "the outcome" if col == OUTCOME else "a static column"
            problems.append(
                f"column {col!r} ({what}) changes within {len(varying)} stays "
                f"(stays {_examples(varying)}); it must be constant per stay"
            )
    return problems


def _examples(values) -> str:
    vals = list(values)[:_MAX_EXAMPLES]
    more = "" if len(list(values)) <= _MAX_EXAMPLES else ", ..."
    return "[" + ", ".join(str(v) for v in vals) + more + "]"
