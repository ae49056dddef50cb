"""Read a MEDS dataset into the canonical tables (see :mod:`safer.cohorts.meds`)."""

from __future__ import annotations

from pathlib import Path

from safer.cohorts.mimic._engine import run_build
from safer.cohorts.mimic.blocks import CohortBuild, ExtractionConfig
from safer.cohorts.mimic.canonical import SourceError, SourceInfo, values_sql
from safer.cohorts.mimic.concepts import antibiotic_condition
from safer.cohorts.mimic.items import FLUIDS, RATE_UNITS, URINE_ITEMS, VASOPRESSORS, item_rows

__all__ = ["MEDS_COLUMNS", "build_meds_cohort", "fill_from_meds"]

MEDS_COLUMNS = ("subject_id", "time", "code", "numeric_value")
_STAGES = 8


def _parquet_files(path: Path) -> list[Path]:
    if path.is_file():
        if path.suffix.lower() not in (".parquet", ".pq"):
            raise SourceError(f"{path}: not a parquet file; pass a MEDS folder or its parquet")
        return [path]
    if not path.is_dir():
        raise SourceError(f"{path}: no such file or folder")
    root = path / "data" if (path / "data").is_dir() else path
    files = sorted(p for p in root.rglob("*.parquet") if "metadata" not in p.parts[-3:-1])
    if not files:
        raise SourceError(
            f"{path}: no parquet files found (a MEDS dataset keeps its events in data/*.parquet)"
        )
    return files


def _events_view(con, files: list[Path]) -> str:
    """Create the view ``ev(subject_id, time, code, value)``; return the value column used."""
    listing = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
    try:
        cols = {
            r[0].lower(): r[1]
            for r in con.execute(
                f"DESCRIBE SELECT * FROM read_parquet({listing}, union_by_name = true)"
            ).fetchall()
        }
    except Exception as exc:  # duckdb raises several types for unreadable parquet
        raise SourceError(f"could not read the MEDS parquet files ({exc})") from exc
    value = "numeric_value" if "numeric_value" in cols else "value" if "value" in cols else None
    missing = [c for c in ("subject_id", "time", "code") if c not in cols]
    if missing or value is None:
        need = missing + ([] if value else ["numeric_value"])
        raise SourceError(
            f"not a MEDS event table: columns {sorted(cols)} lack {need}; MEDS events have "
            f"{', '.join(MEDS_COLUMNS)} (MEDS schema, https://github.com/Medical-Event-Data-Standard)"
        )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW ev AS
        SELECT CAST(subject_id AS BIGINT) AS subject_id, CAST(time AS TIMESTAMP) AS time,
               CAST(code AS VARCHAR) AS code, CAST({value} AS DOUBLE) AS value
        FROM read_parquet({listing}, union_by_name = true)
        """
    )
    return value


def _paired(prefix: str, itemids) -> str:
    """Start/end events of one item paired in time order per subject (items ``itemids``)."""
    ids = ", ".join(str(int(i)) for i in itemids)
    return f"""
        WITH s AS (
            SELECT subject_id, TRY_CAST(split_part(code, '//', 2) AS BIGINT) AS itemid,
                   time, value,
                   row_number() OVER (PARTITION BY subject_id, code ORDER BY time, value) AS n
            FROM ev WHERE code LIKE '{prefix}_START//%'
        ), e AS (
            SELECT subject_id, TRY_CAST(split_part(code, '//', 2) AS BIGINT) AS itemid,
                   time, value,
                   row_number() OVER (PARTITION BY subject_id, code ORDER BY time, value) AS n
            FROM ev WHERE code LIKE '{prefix}_END//%'
        )
        SELECT s.subject_id, s.itemid, s.time AS starttime, e.time AS endtime,
               s.value AS rate, e.value AS amount
        FROM s JOIN e ON e.subject_id = s.subject_id AND e.itemid = s.itemid AND e.n = s.n
        WHERE s.itemid IN ({ids})
    """


def fill_from_meds(con, data: str | Path, stage=lambda name: None) -> SourceInfo:
    """Fill the canonical tables of ``con`` from the MEDS dataset at ``data``."""
    path = Path(data)
    stage("reading MEDS events")
    _events_view(con, _parquet_files(path))
    n_icu = con.execute("SELECT count(*) FROM ev WHERE code LIKE 'ICU_ADMISSION%'").fetchone()[0]
    if not n_icu:
        raise SourceError(
            f"{path}: no ICU_ADMISSION events; SAFER reads MEDS streams made from MIMIC-IV by "
            "the MIMIC-IV MEDS ETL (codes such as ICU_ADMISSION//..., LAB//<itemid>//<unit>)"
        )
    stage("stays and admissions")
    con.execute(
        """
        INSERT INTO c_admissions
        WITH a AS (
            SELECT subject_id, time,
                   row_number() OVER (PARTITION BY subject_id ORDER BY time) AS n
            FROM ev WHERE code LIKE 'HOSPITAL_ADMISSION%'
        ), d AS (
            SELECT subject_id, time, code,
                   row_number() OVER (PARTITION BY subject_id ORDER BY time) AS n
            FROM ev WHERE code LIKE 'HOSPITAL_DISCHARGE%'
        ), death AS (
            SELECT subject_id, min(time) AS t FROM ev WHERE code = 'MEDS_DEATH' GROUP BY 1
        )
        SELECT a.subject_id * 100 + a.n, a.subject_id, a.time, d.time,
               CASE WHEN d.code = 'HOSPITAL_DISCHARGE//DIED' THEN COALESCE(x.t, d.time)
                    WHEN x.t >= a.time AND x.t <= d.time + INTERVAL '24 hours' THEN x.t END,
               CAST(d.code = 'HOSPITAL_DISCHARGE//DIED'
                    OR (x.t >= a.time AND x.t <= d.time + INTERVAL '24 hours') AS INTEGER)
        FROM a JOIN d ON d.subject_id = a.subject_id AND d.n = a.n
        LEFT JOIN death x ON x.subject_id = a.subject_id
        """
    )
    con.execute(
        """
        INSERT INTO c_stays
        WITH a AS (
            SELECT subject_id, time,
                   row_number() OVER (PARTITION BY subject_id ORDER BY time) AS n
            FROM ev WHERE code LIKE 'ICU_ADMISSION%'
        ), d AS (
            SELECT subject_id, time,
                   row_number() OVER (PARTITION BY subject_id ORDER BY time) AS n
            FROM ev WHERE code LIKE 'ICU_DISCHARGE%'
        )
        SELECT a.subject_id * 100 + a.n, a.subject_id, h.hadm_id, a.time, d.time
        FROM a JOIN d ON d.subject_id = a.subject_id AND d.n = a.n
        LEFT JOIN c_admissions h ON h.subject_id = a.subject_id
         AND a.time >= h.admittime AND a.time <= h.dischtime
        QUALIFY row_number() OVER (PARTITION BY a.subject_id, a.n ORDER BY h.admittime) = 1
        """
    )
    con.execute(
        """
        INSERT INTO c_patients
        SELECT subject_id,
               max(CASE code WHEN 'GENDER//F' THEN 1 WHEN 'GENDER//M' THEN 0 END),
               0.0, min(time) FILTER (WHERE code = 'MEDS_BIRTH'),
               min(time) FILTER (WHERE code = 'MEDS_DEATH')
        FROM ev WHERE code IN ('GENDER//F', 'GENDER//M', 'MEDS_BIRTH', 'MEDS_DEATH')
        GROUP BY subject_id
        HAVING min(time) FILTER (WHERE code = 'MEDS_BIRTH') IS NOT NULL
        """
    )
    stage("measurements")
    items = values_sql(item_rows(), ["it", "itemid", "feature", "scale", "shift"])
    con.execute(
        f"""
        INSERT INTO c_measurements
        SELECT ev.subject_id, ev.time, it.feature,
               CASE WHEN it.feature = 'mechvent' THEN 1.0
                    ELSE ev.value * it.scale + it.shift END
        FROM ev JOIN {items}
          ON it.itemid = TRY_CAST(split_part(ev.code, '//', 2) AS BIGINT)
        WHERE ev.code LIKE 'LAB//%'
        UNION ALL
        SELECT subject_id, time, 'Weight_kg', value FROM ev
        WHERE code = 'SUBJECT_WEIGHT_AT_INFUSION//KG'
        """
    )
    stage("vasopressors")
    vaso = values_sql(
        [(i, d, u) for i, (d, u) in VASOPRESSORS.items()], ["ids", "itemid", "drug", "unit"]
    )
    units = values_sql(
        [(k, float(f), u) for k, (f, u) in RATE_UNITS.items()], ["un", "uom", "factor", "unit"]
    )
    con.execute(
        f"""
        INSERT INTO c_vaso
        WITH w AS (
            SELECT subject_id, time, max(value) AS weight FROM ev
            WHERE code = 'SUBJECT_WEIGHT_AT_INFUSION//KG' GROUP BY ALL
        ), p AS (
            SELECT q.*, ids.drug, ids.unit FROM ({_paired("INFUSION", list(VASOPRESSORS))}) q
            JOIN {vaso} ON ids.itemid = q.itemid
        )
        SELECT p.subject_id, p.starttime, p.endtime, p.drug, p.rate * un.factor, un.unit,
               w.weight
        FROM p JOIN {units} ON un.uom = lower(p.unit)
        LEFT JOIN w ON w.subject_id = p.subject_id AND w.time = p.starttime
        WHERE p.rate IS NOT NULL
        """
    )
    stage("fluids")
    fluids = values_sql([(i, float(f)) for i, f in FLUIDS.items()], ["fx", "itemid", "factor"])
    con.execute(
        f"""
        INSERT INTO c_fluids
        SELECT q.subject_id, q.starttime, q.endtime, q.amount * fx.factor
        FROM ({_paired("INFUSION", list(FLUIDS))}) q
        JOIN {fluids} ON fx.itemid = q.itemid
        WHERE q.amount IS NOT NULL
        """
    )
    stage("urine output")
    urine = ", ".join(str(i) for i in URINE_ITEMS)
    con.execute(
        f"""
        INSERT INTO c_urine
        SELECT subject_id, time, value FROM ev
        WHERE code LIKE 'SUBJECT_FLUID_OUTPUT//%'
          AND TRY_CAST(split_part(code, '//', 2) AS BIGINT) IN ({urine})
          AND value IS NOT NULL
        """
    )
    stage("antibiotics")
    con.execute(
        f"""
        INSERT INTO c_antibiotics
        SELECT subject_id, time FROM (
            SELECT subject_id, time, split_part(code, '//', 3) AS drug FROM ev
            WHERE code LIKE 'MEDICATION//START//%'
        ) WHERE {antibiotic_condition("drug")}
        """
    )
    return SourceInfo(
        kind="meds",
        location=str(path),
        has_microbiology=False,
        has_notes=False,
        statements=[
            "MEDS keeps no infusion rate unit: each vasopressor's usual MIMIC-IV unit is assumed",
            "MEDS stream: no notes (the MIMIC-IV MEDS ETL carries none)",
        ],
    )


def build_meds_cohort(
    data: str | Path, config: ExtractionConfig | None = None, *, progress: bool = True
) -> CohortBuild:
    """Build the Sepsis-3 cohort table from a MEDS dataset made from MIMIC-IV.

    Parameters
    ----------
    data : path
        A MEDS folder (``data/*.parquet``), a folder of event parquet files, or one file.
    config : ExtractionConfig, optional
        Cohort settings (:class:`safer.cohorts.mimic.ExtractionConfig`).
    progress : bool
        Show one progress bar advancing per stage (stderr).

    Returns
    -------
    CohortBuild
        ``table`` (validated cohort table), ``summary``, ``onsets``, ``statements``.

    Raises
    ------
    SourceError
        Not a MEDS event table, no ICU stays, or no stay meets the cohort definition.
    """
    config = config or ExtractionConfig()
    return run_build(
        lambda con, stage: fill_from_meds(con, data, stage), _STAGES, "MEDS cohort", config,
        progress,
    )  # fmt: skip
