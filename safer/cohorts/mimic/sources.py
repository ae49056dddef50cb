"""MIMIC-III and MIMIC-IV sources: the PhysioNet CSV folders (read in place by DuckDB) and a
mimic-code PostgreSQL build (read through SQLAlchemy).

Both run the same normalisation queries (:func:`canonical_queries`, plain SQL that DuckDB and
PostgreSQL both run) from the raw MIMIC tables into the canonical tables; only the table names
differ: a typed DuckDB view over each ``.csv.gz`` file, or ``schema.table`` in PostgreSQL.

MIMIC-III and MIMIC-IV differences handled here
-----------------------------------------------
- ICU stays: ``ICUSTAYS.ICUSTAY_ID`` (III) / ``icu/icustays.stay_id`` (IV).
- Age: III has the date of birth (ages over 89 are shifted to ~300 years and set to 91.4, the
  median of that group); IV has ``anchor_age`` in ``anchor_year`` (age = anchor_age + years
  since 1 January of anchor_year).
- Date of death: ``PATIENTS.DOD`` (III) / ``patients.dod`` (IV, out-of-hospital deaths up to a
  year after discharge); in-hospital death from ``hospital_expire_flag`` in both.
- Inputs: IV and III-MetaVision ``inputevents(_mv)`` have start/end times, a rate and its unit,
  the patient's weight, and a status ("Rewritten" rows are corrections and are dropped).
  III-CareVue ``INPUTEVENTS_CV`` has chartings only: a fluid amount is an instant at its
  charttime; a vasopressor rate runs from its charttime to the next charting of the same drug,
  at most 2 hours; its weight comes from the stay.
- Item ids: CareVue and MetaVision ids side by side in :mod:`safer.cohorts.mimic.items`;
  ``CHARTEVENTS.ERROR = 1`` rows (III) are dropped.
- Antibiotics: III prescriptions have a start *date* (taken at 00:00), IV a start time; local
  routes (eyes, ears, skin) are left out.
- Microbiology: a culture with only a chart date is placed at 00:00 of that date.
- Notes: III ``NOTEEVENTS`` (``ISERROR`` rows dropped; discharge summaries never read), IV
  MIMIC-IV-Note ``note/radiology`` (``discharge`` never read).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

from safer.cohorts.mimic.canonical import CANONICAL, SourceError, SourceInfo, values_sql
from safer.cohorts.mimic.concepts import antibiotic_condition
from safer.cohorts.mimic.items import FLUIDS, RATE_UNITS, URINE_ITEMS, VASOPRESSORS, item_rows

__all__ = ["VERSIONS", "TABLES", "LOST", "MimicFolder", "MimicPostgres", "canonical_queries"]

VERSIONS = ("iii", "iv")
_CV_RATE_HOURS = 2

# version -> table -> (module folder, {column: type}) for the columns SAFER reads
TABLES: dict[str, dict[str, tuple[str, dict[str, str]]]] = {
    "iv": {
        "patients": ("hosp", {"subject_id": "BIGINT", "gender": "VARCHAR",
                              "anchor_age": "DOUBLE", "anchor_year": "INTEGER",
                              "dod": "TIMESTAMP"}),
        "admissions": ("hosp", {"subject_id": "BIGINT", "hadm_id": "BIGINT",
                                "admittime": "TIMESTAMP", "dischtime": "TIMESTAMP",
                                "deathtime": "TIMESTAMP", "hospital_expire_flag": "INTEGER"}),
        "icustays": ("icu", {"subject_id": "BIGINT", "hadm_id": "BIGINT", "stay_id": "BIGINT",
                             "intime": "TIMESTAMP", "outtime": "TIMESTAMP"}),
        "chartevents": ("icu", {"subject_id": "BIGINT", "charttime": "TIMESTAMP",
                                "itemid": "BIGINT", "valuenum": "DOUBLE"}),
        "labevents": ("hosp", {"subject_id": "BIGINT", "charttime": "TIMESTAMP",
                               "itemid": "BIGINT", "valuenum": "DOUBLE"}),
        "inputevents": ("icu", {"subject_id": "BIGINT", "starttime": "TIMESTAMP",
                                "endtime": "TIMESTAMP", "itemid": "BIGINT", "amount": "DOUBLE",
                                "amountuom": "VARCHAR", "rate": "DOUBLE", "rateuom": "VARCHAR",
                                "patientweight": "DOUBLE", "statusdescription": "VARCHAR"}),
        "outputevents": ("icu", {"subject_id": "BIGINT", "charttime": "TIMESTAMP",
                                 "itemid": "BIGINT", "value": "DOUBLE"}),
        "prescriptions": ("hosp", {"subject_id": "BIGINT", "starttime": "TIMESTAMP",
                                   "drug": "VARCHAR", "route": "VARCHAR"}),
        "microbiologyevents": ("hosp", {"subject_id": "BIGINT", "chartdate": "TIMESTAMP",
                                        "charttime": "TIMESTAMP"}),
    },
    "iii": {
        "PATIENTS": ("", {"subject_id": "BIGINT", "gender": "VARCHAR", "dob": "TIMESTAMP",
                          "dod": "TIMESTAMP"}),
        "ADMISSIONS": ("", {"subject_id": "BIGINT", "hadm_id": "BIGINT",
                            "admittime": "TIMESTAMP", "dischtime": "TIMESTAMP",
                            "deathtime": "TIMESTAMP", "hospital_expire_flag": "INTEGER"}),
        "ICUSTAYS": ("", {"subject_id": "BIGINT", "hadm_id": "BIGINT", "icustay_id": "BIGINT",
                          "intime": "TIMESTAMP", "outtime": "TIMESTAMP"}),
        "CHARTEVENTS": ("", {"subject_id": "BIGINT", "charttime": "TIMESTAMP",
                             "itemid": "BIGINT", "valuenum": "DOUBLE", "error": "INTEGER"}),
        "LABEVENTS": ("", {"subject_id": "BIGINT", "charttime": "TIMESTAMP", "itemid": "BIGINT",
                           "valuenum": "DOUBLE"}),
        "INPUTEVENTS_MV": ("", {"subject_id": "BIGINT", "starttime": "TIMESTAMP",
                                "endtime": "TIMESTAMP", "itemid": "BIGINT", "amount": "DOUBLE",
                                "amountuom": "VARCHAR", "rate": "DOUBLE", "rateuom": "VARCHAR",
                                "patientweight": "DOUBLE", "statusdescription": "VARCHAR"}),
        "INPUTEVENTS_CV": ("", {"subject_id": "BIGINT", "icustay_id": "BIGINT",
                                "charttime": "TIMESTAMP", "itemid": "BIGINT", "amount": "DOUBLE",
                                "amountuom": "VARCHAR", "rate": "DOUBLE", "rateuom": "VARCHAR"}),
        "OUTPUTEVENTS": ("", {"subject_id": "BIGINT", "charttime": "TIMESTAMP",
                              "itemid": "BIGINT", "value": "DOUBLE"}),
        "PRESCRIPTIONS": ("", {"subject_id": "BIGINT", "startdate": "TIMESTAMP",
                               "drug": "VARCHAR", "route": "VARCHAR"}),
        "MICROBIOLOGYEVENTS": ("", {"subject_id": "BIGINT", "chartdate": "TIMESTAMP",
                                    "charttime": "TIMESTAMP"}),
    },
}  # fmt: skip

# optional note tables: version -> (module folder, table, columns)
NOTE_TABLES: dict[str, tuple[str, str, dict[str, str]]] = {
    "iv": ("note", "radiology", {"subject_id": "BIGINT", "charttime": "TIMESTAMP",
                                 "storetime": "TIMESTAMP", "text": "VARCHAR"}),
    "iii": ("", "NOTEEVENTS", {"subject_id": "BIGINT", "chartdate": "TIMESTAMP",
                               "charttime": "TIMESTAMP", "storetime": "TIMESTAMP",
                               "category": "VARCHAR", "iserror": "INTEGER", "text": "VARCHAR"}),
}  # fmt: skip

# what the cohort loses without each table (named in the missing-table error)
LOST: dict[str, str] = {
    "patients": "age, gender and date of death",
    "admissions": "the in-hospital death outcome",
    "icustays": "the ICU stays themselves",
    "chartevents": "vital signs, GCS, FiO2, ventilation and weights",
    "labevents": "laboratory values (SOFA's platelets, bilirubin, creatinine, blood gases)",
    "inputevents": "IV fluids and vasopressors (the actions)",
    "inputevents_mv": "MetaVision IV fluids and vasopressors (the actions, 2008-2012)",
    "inputevents_cv": "CareVue IV fluids and vasopressors (the actions, 2001-2008)",
    "outputevents": "urine output (balances, SOFA's renal score)",
    "prescriptions": "antibiotics (suspicion of infection, hence Sepsis-3 onset)",
    "microbiologyevents": "cultures (suspicion of infection, hence Sepsis-3 onset)",
}


def _rel(name: str, cols: list[str], rows: list[tuple]) -> str:
    return values_sql(rows, [name, *cols])


def canonical_queries(version: str, t: dict[str, str], has_notes: bool) -> dict[str, list[str]]:
    """Canonical table -> the SQL queries filling it, over raw tables named as in ``t``
    (logical lower-case name -> relation). Plain SQL: DuckDB and PostgreSQL run it alike."""
    items = _rel("it", ["itemid", "feature", "scale", "shift"], item_rows())
    vaso = _rel("vz", ["itemid", "drug", "unit"], [(i, d, u) for i, (d, u) in VASOPRESSORS.items()])
    units = _rel(
        "un", ["uom", "factor", "unit"], [(k, float(f), u) for k, (f, u) in RATE_UNITS.items()]
    )
    fluids = _rel("fx", ["itemid", "factor"], [(i, float(f)) for i, f in FLUIDS.items()])
    urine = ", ".join(str(i) for i in URINE_ITEMS)
    value = "CASE WHEN it.feature = 'mechvent' THEN 1.0 ELSE x.valuenum * it.scale + it.shift END"
    iv = version == "iv"
    stay_id = "stay_id" if iv else "icustay_id"
    p, a, s = t["patients"], t["admissions"], t["icustays"]
    q: dict[str, list[str]] = {name: [] for name in CANONICAL}
    if iv:
        q["c_patients"].append(
            f"SELECT subject_id, CASE WHEN gender = 'F' THEN 1 WHEN gender = 'M' THEN 0 END, "
            f"CAST(anchor_age AS DOUBLE PRECISION), "
            f"make_timestamp(CAST(anchor_year AS INTEGER), 1, 1, 0, 0, 0.0), "
            f"CAST(dod AS TIMESTAMP) FROM {p}"
        )
    else:
        q["c_patients"].append(
            f"SELECT subject_id, CASE WHEN gender = 'F' THEN 1 WHEN gender = 'M' THEN 0 END, "
            f"0.0, CAST(dob AS TIMESTAMP), CAST(dod AS TIMESTAMP) FROM {p}"
        )
    q["c_admissions"].append(
        f"SELECT hadm_id, subject_id, admittime, dischtime, deathtime, "
        f"CAST(hospital_expire_flag AS INTEGER) FROM {a}"
    )
    q["c_stays"].append(f"SELECT {stay_id}, subject_id, hadm_id, intime, outtime FROM {s}")
    error = "" if iv else "AND COALESCE(x.error, 0) <> 1"
    q["c_measurements"] += [
        f"SELECT x.subject_id, x.charttime, it.feature, {value} "
        f"FROM {t['chartevents']} x JOIN {items} ON it.itemid = x.itemid "
        f"WHERE x.charttime IS NOT NULL {error}",
        f"SELECT x.subject_id, x.charttime, it.feature, {value} "
        f"FROM {t['labevents']} x JOIN {items} ON it.itemid = x.itemid "
        f"WHERE x.charttime IS NOT NULL AND x.valuenum IS NOT NULL",
    ]
    mv = t["inputevents"] if iv else t["inputevents_mv"]
    q["c_vaso"].append(
        f"SELECT x.subject_id, x.starttime, x.endtime, vz.drug, x.rate * un.factor, un.unit, "
        f"x.patientweight FROM {mv} x JOIN {vaso} ON vz.itemid = x.itemid "
        f"JOIN {units} ON un.uom = lower(COALESCE(x.rateuom, vz.unit)) "
        f"WHERE x.rate IS NOT NULL AND COALESCE(x.statusdescription, '') <> 'Rewritten'"
    )
    q["c_fluids"].append(
        f"SELECT x.subject_id, x.starttime, x.endtime, "
        f"x.amount * fx.factor * CASE WHEN lower(x.amountuom) = 'l' THEN 1000 ELSE 1 END "
        f"FROM {mv} x JOIN {fluids} ON fx.itemid = x.itemid "
        f"WHERE x.amount > 0 AND lower(COALESCE(x.amountuom, 'ml')) IN ('ml', 'l') "
        f"AND COALESCE(x.statusdescription, '') <> 'Rewritten'"
    )
    if not iv:
        cv = t["inputevents_cv"]
        hold = f"x.charttime + INTERVAL '{_CV_RATE_HOURS} hours'"
        q["c_vaso"].append(
            f"SELECT x.subject_id, x.charttime, LEAST(COALESCE(x.next_time, {hold}), {hold}), "
            f"x.drug, x.rate * un.factor, un.unit, CAST(NULL AS DOUBLE PRECISION) FROM ("
            f"SELECT y.*, vz.drug, vz.unit AS default_unit, LEAD(y.charttime) OVER ("
            f"PARTITION BY y.icustay_id, y.itemid ORDER BY y.charttime) AS next_time "
            f"FROM {cv} y JOIN {vaso} ON vz.itemid = y.itemid) x "
            f"JOIN {units} ON un.uom = lower(COALESCE(x.rateuom, x.default_unit)) "
            f"WHERE x.rate IS NOT NULL"
        )
        q["c_fluids"].append(
            f"SELECT x.subject_id, x.charttime, x.charttime, x.amount * fx.factor "
            f"FROM {cv} x JOIN {fluids} ON fx.itemid = x.itemid "
            f"WHERE x.amount > 0 AND lower(COALESCE(x.amountuom, 'ml')) = 'ml'"
        )
    q["c_urine"].append(
        f"SELECT subject_id, charttime, value FROM {t['outputevents']} "
        f"WHERE itemid IN ({urine}) AND value IS NOT NULL"
    )
    start = "starttime" if iv else "CAST(startdate AS TIMESTAMP)"
    q["c_antibiotics"].append(
        f"SELECT subject_id, {start} FROM {t['prescriptions']} "
        f"WHERE {start} IS NOT NULL AND {antibiotic_condition('drug', 'route')}"
    )
    q["c_cultures"].append(
        f"SELECT DISTINCT subject_id, COALESCE(charttime, chartdate), charttime IS NOT NULL "
        f"FROM {t['microbiologyevents']} WHERE COALESCE(charttime, chartdate) IS NOT NULL"
    )
    if has_notes:
        if iv:
            q["c_notes"].append(
                f"SELECT subject_id, charttime, CAST(NULL AS TIMESTAMP), storetime, "
                f"'radiology', text FROM {t['notes']}"
            )
        else:
            q["c_notes"].append(
                f"SELECT subject_id, charttime, chartdate, storetime, category, text "
                f"FROM {t['notes']} WHERE COALESCE(iserror, 0) <> 1 "
                f"AND lower(COALESCE(category, '')) NOT LIKE '%discharge%'"
            )
    return q


@dataclass
class _Table:
    logical: str  # lower-case name used in the queries
    name: str  # name as distributed (upper case for MIMIC-III)
    module: str
    columns: dict[str, str]


def _tables(version: str) -> list[_Table]:
    return [_Table(n.lower(), n, m, cols) for n, (m, cols) in TABLES[version].items()]


def _check_version(version: str) -> str:
    v = str(version).lower().replace("mimic-", "").replace("mimic", "")
    if v not in VERSIONS:
        raise SourceError(f"unknown MIMIC version {version!r}; use one of {list(VERSIONS)}")
    return v


def _missing_error(where: str, version: str, missing: list[str]) -> SourceError:
    def lost(name: str) -> str:
        key = name.replace("/", ".").rsplit(".", 1)[-1].lower()
        return LOST.get(key, "part of the cohort")

    lines = "\n".join(f"  - {m}: without it, {lost(m)}" for m in missing)
    return SourceError(
        f"{where} (MIMIC-{version.upper()}) lacks {len(missing)} table(s) the cohort needs:\n"
        f"{lines}\nDownload the complete module(s) from PhysioNet and point --source at them."
    )


class MimicFolder:
    """A PhysioNet MIMIC folder, read in place (``.csv.gz`` or ``.csv``) through DuckDB.

    Parameters
    ----------
    root : path
        MIMIC-IV: the folder holding ``hosp/`` and ``icu/`` (v2.x, v3.x); MIMIC-III v1.4: the
        folder holding ``ADMISSIONS.csv.gz`` and the other upper-case tables.
    version : {"iii", "iv"}
    notes : path, optional
        MIMIC-IV-Note's folder (holding ``note/radiology.csv.gz`` or ``radiology.csv.gz``);
        by default ``root/note`` when present. MIMIC-III notes are ``NOTEEVENTS`` in ``root``.

    Examples
    --------
    >>> MimicFolder("physionet.org/files/mimiciv/3.1", "iv").detected_version() is None
    True
    """

    def __init__(self, root: str | Path, version: str, notes: str | Path | None = None):
        self.root = Path(root)
        self.version = _check_version(version)
        self.notes = Path(notes) if notes is not None else None

    # -- discovery -------------------------------------------------------------------------
    def _find(self, folder: Path, name: str) -> Path | None:
        if not folder.is_dir():
            return None
        wanted = {f"{name}.csv.gz".lower(), f"{name}.csv".lower()}
        hits = sorted(p for p in folder.iterdir() if p.name.lower() in wanted)
        return hits[0] if hits else None

    def detected_version(self) -> str | None:
        r = self.root
        if (r / "hosp").is_dir() and (r / "icu").is_dir():
            return "iv"
        if self._find(r, "ADMISSIONS") or self._find(r, "PATIENTS"):
            return "iii"
        return None

    def _files(self) -> dict[str, Path]:
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: no such folder")
        found = self.detected_version()
        if found is None:
            raise SourceError(
                f"{self.root} is not a MIMIC folder: expected hosp/ and icu/ (MIMIC-IV) or "
                "ADMISSIONS.csv.gz, PATIENTS.csv.gz, ... (MIMIC-III v1.4)"
            )
        if found != self.version:
            raise SourceError(
                f"{self.root} looks like MIMIC-{found.upper()}, not MIMIC-{self.version.upper()}"
                f"; pass --version {found}"
            )
        files, missing = {}, []
        for tab in _tables(self.version):
            path = self._find(self.root / tab.module if tab.module else self.root, tab.name)
            if path is None:
                missing.append(f"{tab.module + '/' if tab.module else ''}{tab.name}")
            else:
                files[tab.logical] = path
        if missing:
            raise _missing_error(str(self.root), self.version, missing)
        note = self._note_file()
        if note is not None:
            files["notes"] = note
        return files

    def _note_file(self) -> Path | None:
        module, name, _ = NOTE_TABLES[self.version]
        if self.version == "iii":
            return self._find(self.root, name)
        base = self.notes if self.notes is not None else self.root / module
        hit = self._find(base, name) or self._find(base / module, name)
        if hit is None and self.notes is not None:
            raise SourceError(f"{self.notes}: no {name}.csv.gz (MIMIC-IV-Note) found there")
        return hit

    # -- reading ---------------------------------------------------------------------------
    def _header(self, con, path: Path) -> list[str]:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        try:
            with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
                line = fh.readline()
        except OSError as exc:
            raise SourceError(f"{path}: cannot be read ({exc})") from exc
        return [c.strip().strip('"').lower() for c in line.rstrip("\r\n").split(",")]

    def _view(self, con, logical: str, path: Path, columns: dict[str, str]) -> str:
        header = self._header(con, path)
        missing = [c for c in columns if c not in header]
        if missing:
            raise SourceError(
                f"{path} lacks columns {missing} of MIMIC-{self.version.upper()}'s {logical} "
                f"table (found {header[:12]}); is this the right MIMIC version and file?"
            )
        select = ", ".join(f"TRY_CAST({c} AS {t}) AS {c}" for c, t in columns.items())
        src = str(path).replace("'", "''")
        view = f"raw_{logical}"
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {select} FROM read_csv('{src}', "
            f"header = true, all_varchar = true, quote = '\"', escape = '\"', "
            f"max_line_size = 50000000)"
        )
        return view

    def fill(self, con, stage=lambda name: None) -> SourceInfo:
        """Fill the canonical tables of the DuckDB connection ``con``."""
        files = self._files()
        columns = {tab.logical: tab.columns for tab in _tables(self.version)}
        if "notes" in files:
            columns["notes"] = NOTE_TABLES[self.version][2]
        names = {k: self._view(con, k, files[k], columns[k]) for k in files}
        queries = canonical_queries(self.version, names, "notes" in files)
        for target, sqls in queries.items():
            stage(f"reading {target[2:]}")
            for sql in sqls:
                con.execute(f"INSERT INTO {target} {sql}")
        return _info(self.version, str(self.root), "notes" in files)


def _info(version: str, location: str, has_notes: bool) -> SourceInfo:
    statements = []
    if not has_notes:
        where = "NOTEEVENTS" if version == "iii" else "MIMIC-IV-Note's note/radiology"
        statements.append(f"no notes: {where} was not found, every note is empty")
    return SourceInfo(
        kind=f"mimic-{version}", location=location, has_notes=has_notes, statements=statements
    )


class MimicPostgres:
    """A mimic-code PostgreSQL build, read through SQLAlchemy.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. ``postgresql+psycopg2://user:password@host:5432/mimiciv``.
    version : {"iii", "iv"}
    schemas : mapping, optional
        Schema of each module: MIMIC-IV ``{"hosp": "mimiciv_hosp", "icu": "mimiciv_icu",
        "note": "mimiciv_note"}``, MIMIC-III ``{"": "mimiciii"}`` (mimic-code's defaults).

    Examples
    --------
    >>> db = MimicPostgres("postgresql+psycopg2://me:secret@localhost/mimiciv", "iv")
    >>> db.schemas["icu"], db._safe_url()
    ('mimiciv_icu', 'postgresql+psycopg2://me:***@localhost/mimiciv')
    """

    DEFAULT_SCHEMAS = {
        "iv": {"hosp": "mimiciv_hosp", "icu": "mimiciv_icu", "note": "mimiciv_note"},
        "iii": {"": "mimiciii"},
    }

    def __init__(self, url: str, version: str, schemas: dict[str, str] | None = None):
        self.url = url
        self.version = _check_version(version)
        self.schemas = {**self.DEFAULT_SCHEMAS[self.version], **(schemas or {})}

    def _safe_url(self) -> str:
        from sqlalchemy.engine import make_url

        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - an unparsable URL is reported as such below
            return "<unparsable URL>"

    def _engine(self):
        import sqlalchemy as sa

        try:
            engine = sa.create_engine(self.url)
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # driver and network errors have many types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SourceError(
                f"cannot connect to {self._safe_url()} ({first}); check the host, port, "
                "database name, user and password"
            ) from exc
        return engine

    def _relations(self, engine) -> tuple[dict[str, str], bool]:
        import sqlalchemy as sa

        inspector = sa.inspect(engine)
        cache: dict[str, set[str]] = {}

        def has(module: str, table: str) -> bool:
            schema = self.schemas.get(module, module)
            if schema not in cache:
                cache[schema] = {n.lower() for n in inspector.get_table_names(schema=schema)}
                cache[schema] |= {n.lower() for n in inspector.get_view_names(schema=schema)}
            return table.lower() in cache[schema]

        names, missing = {}, []
        for tab in _tables(self.version):
            if has(tab.module, tab.name):
                names[tab.logical] = f"{self.schemas.get(tab.module, tab.module)}.{tab.logical}"
            else:
                schema = self.schemas.get(tab.module, tab.module)
                missing.append(f"{schema}.{tab.logical}")
        if missing:
            raise _missing_error(self._safe_url(), self.version, missing)
        module, name, _ = NOTE_TABLES[self.version]
        has_notes = has(module, name)
        if has_notes:
            names["notes"] = f"{self.schemas.get(module, module)}.{name.lower()}"
        return names, has_notes

    def fill(self, con, stage=lambda name: None, chunk_rows: int = 200_000) -> SourceInfo:
        """Fill the canonical tables of ``con`` by running the queries in PostgreSQL."""
        import pandas as pd
        import sqlalchemy as sa

        engine = self._engine()
        try:
            names, has_notes = self._relations(engine)
            queries = canonical_queries(self.version, names, has_notes)
            with engine.connect() as conn:
                for target, sqls in queries.items():
                    stage(f"reading {target[2:]}")
                    cols = [c for c, _ in CANONICAL[target]]
                    for sql in sqls:
                        result = conn.execution_options(stream_results=True).execute(sa.text(sql))
                        while rows := result.fetchmany(chunk_rows):
                            chunk = pd.DataFrame(rows, columns=cols)
                            con.register("pg_chunk", chunk)
                            con.execute(f"INSERT INTO {target} SELECT * FROM pg_chunk")
                            con.unregister("pg_chunk")
        finally:
            engine.dispose()
        return _info(self.version, self._safe_url(), has_notes)
