"""The canonical layer: a few long tables that every source is normalised into.

A source (a MIMIC CSV folder, a PostgreSQL build, a MEDS stream) only has to fill these tables
in a DuckDB connection; every concept (suspicion of infection, Sepsis-3 onset, SOFA, doses,
blocks) is written once, over them (:mod:`safer.cohorts.mimic.concepts`,
:mod:`safer.cohorts.mimic.blocks`).

====================  =========================================================================
table                 one row per
====================  =========================================================================
``c_stays``           ICU stay: ``stay_id, subject_id, hadm_id, intime, outtime``
``c_patients``        patient: ``gender`` (1 female), age reference (``anchor_age`` years at
                      ``anchor_time``; MIMIC-III and MEDS: 0 at birth), ``dod`` (date of death)
``c_admissions``      hospital admission: times, ``deathtime``, ``died_in_hospital`` (0/1)
``c_measurements``    measurement: ``subject_id, charttime, feature, value`` in schema units
                      (features named as in :data:`safer.cohorts.schema.FEATURES`, plus the GCS
                      components ``GCS_eye/verbal/motor``), not yet cleaned of outliers
``c_vaso``            vasopressor rate interval: ``drug``, ``rate`` in ``unit`` (``ug/kg/min``,
                      ``ug/min`` or ``U/min``), the weight charted with it (may be null)
``c_fluids``          IV fluid interval: tonicity-adjusted ``volume_ml`` given from ``starttime``
                      to ``endtime`` (equal for a bolus charted as an instant)
``c_urine``           urine output charting: ``volume_ml`` at ``charttime``
``c_antibiotics``     systemic antibiotic order/administration start
``c_cultures``        culture drawn (``has_time`` false: only its date is known)
``c_notes``           clinical note: ``charttime`` (null when only ``chartdate`` is known),
                      ``storetime`` (when it was signed, may be null), ``category``, ``text``
====================  =========================================================================

``c_cultures`` and ``c_notes`` may be empty; the source says whether it has the tables at all
(:class:`SourceInfo`), and the build states what follows (suspicion from antibiotics alone, no
notes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from safer.errors import SaferError

__all__ = [
    "CANONICAL",
    "SourceInfo",
    "SourceError",
    "ExtractionConfigError",
    "create_canonical",
    "values_sql",
]


class SourceError(SaferError, ValueError):
    """A data source cannot give a cohort: not MIMIC, wrong version, missing tables, no
    connection, wrong MEDS schema. The message says what was found and what to do."""


class ExtractionConfigError(SaferError, ValueError):
    """A cohort extraction setting is not allowed (e.g. asking for discharge summaries)."""


CANONICAL: dict[str, list[tuple[str, str]]] = {
    "c_stays": [("stay_id", "BIGINT"), ("subject_id", "BIGINT"), ("hadm_id", "BIGINT"),
                ("intime", "TIMESTAMP"), ("outtime", "TIMESTAMP")],
    "c_patients": [("subject_id", "BIGINT"), ("gender", "INTEGER"), ("anchor_age", "DOUBLE"),
                   ("anchor_time", "TIMESTAMP"), ("dod", "TIMESTAMP")],
    "c_admissions": [("hadm_id", "BIGINT"), ("subject_id", "BIGINT"), ("admittime", "TIMESTAMP"),
                     ("dischtime", "TIMESTAMP"), ("deathtime", "TIMESTAMP"),
                     ("died_in_hospital", "INTEGER")],
    "c_measurements": [("subject_id", "BIGINT"), ("charttime", "TIMESTAMP"),
                       ("feature", "VARCHAR"), ("value", "DOUBLE")],
    "c_vaso": [("subject_id", "BIGINT"), ("starttime", "TIMESTAMP"), ("endtime", "TIMESTAMP"),
               ("drug", "VARCHAR"), ("rate", "DOUBLE"), ("unit", "VARCHAR"), ("weight", "DOUBLE")],
    "c_fluids": [("subject_id", "BIGINT"), ("starttime", "TIMESTAMP"), ("endtime", "TIMESTAMP"),
                 ("volume_ml", "DOUBLE")],
    "c_urine": [("subject_id", "BIGINT"), ("charttime", "TIMESTAMP"), ("volume_ml", "DOUBLE")],
    "c_antibiotics": [("subject_id", "BIGINT"), ("starttime", "TIMESTAMP")],
    "c_cultures": [("subject_id", "BIGINT"), ("charttime", "TIMESTAMP"), ("has_time", "BOOLEAN")],
    "c_notes": [("subject_id", "BIGINT"), ("charttime", "TIMESTAMP"), ("chartdate", "TIMESTAMP"),
                ("storetime", "TIMESTAMP"), ("category", "VARCHAR"), ("text", "VARCHAR")],
}  # fmt: skip


@dataclass
class SourceInfo:
    """What a source holds, as the build needs to know it.

    Parameters
    ----------
    kind : str
        ``"mimic-iii"``, ``"mimic-iv"`` or ``"meds"``.
    location : str
        The folder, file or database (password hidden).
    has_microbiology : bool
        ``False``: suspicion of infection falls back to antibiotics alone.
    has_notes : bool
        ``False``: every ``note`` is empty.
    statements : list of str
        What the reader decided about this source (said in the summary).

    Examples
    --------
    A source's reader returns one from its ``fill``; the build reads its flags:

    >>> info = SourceInfo("mimic-iv", "physionet.org/files/mimiciv/3.1", has_microbiology=False)
    >>> info.has_microbiology, info.has_notes, info.statements
    (False, False, [])
    """

    kind: str
    location: str
    has_microbiology: bool = True
    has_notes: bool = False
    statements: list[str] = field(default_factory=list)


def create_canonical(con) -> None:
    """Create the (empty) canonical tables in a DuckDB connection."""
    for name, cols in CANONICAL.items():
        body = ", ".join(f"{c} {t}" for c, t in cols)
        con.execute(f"CREATE OR REPLACE TABLE {name} ({body})")


def values_sql(rows: list[tuple], names: list[str]) -> str:
    """An inline ``(VALUES ...) AS t(names)`` relation; runs on DuckDB and PostgreSQL alike."""
    if not rows:
        raise ValueError("values_sql needs at least one row")

    def lit(v) -> str:
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"
        if isinstance(v, bool):
            return "TRUE" if v else "FALSE"
        if isinstance(v, float):
            return repr(v) if "e" not in repr(v) else f"{v:.12f}"
        return str(v)

    body = ", ".join("(" + ", ".join(lit(v) for v in row) + ")" for row in rows)
    return f"(VALUES {body}) AS {names[0]}({', '.join(names[1:])})"
