"""Time the MIMIC-IV extraction at scale on a synthetic MIMIC-IV-shaped folder.

    python benchmarks/mimic_scale.py [--stays 30000] [--chart-rows 1500] [--threads 2]
        [--memory-limit 6GB] [--folder /tmp/safer-mimic-scale] [--keep]

Writes a folder in MIMIC-IV's layout (hosp/ and icu/ ``.csv.gz`` with the real table and column
names) of ``--stays`` ICU stays, one per patient: ``--chart-rows`` chartevents rows per stay
(the mapped vitals hourly, GCS, FiO2 and weights, the rest filler items SAFER does not read, as
most of MIMIC-IV's chartevents are), ~250 lab rows, ~90 input rows (norepinephrine, saline
maintenance and boluses), urine hourly, antibiotics and cultures. Then runs
``safer cohort mimic`` in a child process on ``--threads`` DuckDB threads with
``--memory-limit``, and reports wall time and the child's peak resident memory (its VmHWM,
Linux). Target (issue 15): 30,000 stays in <= 10 min and <= 8 GiB on 2 cores.
Writes docs/benchmarks/mimic_scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import header, write_page  # noqa: E402

VITALS = [  # itemid, mean, sd (hourly)
    (220045, 90, 15), (220179, 118, 18), (220180, 60, 10), (220181, 78, 12),
    (220210, 20, 5), (220277, 96, 2), (223761, 98.6, 1.2),
]  # fmt: skip
LABS = [  # itemid, mean, sd (every 6 h)
    (50971, 4.1, 0.5), (50983, 139, 4), (50902, 104, 5), (50931, 130, 40), (50960, 2.0, 0.3),
    (50893, 8.4, 0.6), (51222, 10, 1.8), (51301, 12, 5), (51265, 200, 90), (51275, 35, 8),
    (51274, 14, 3), (51237, 1.3, 0.3), (50820, 7.38, 0.06), (50821, 110, 40), (50818, 40, 7),
    (50802, -1, 4), (50882, 24, 4), (50813, 2.0, 1.2), (51006, 25, 15), (50912, 1.3, 0.8),
    (50878, 60, 40), (50861, 50, 30), (50885, 1.0, 0.8),
]  # fmt: skip


def _sql_rows(items) -> str:
    body = ", ".join(f"({i}, {m}, {s}, {n})" for n, (i, m, s) in enumerate(items))
    return f"(VALUES {body}) AS it(itemid, mu, sd, n)"


def write_folder(folder: Path, stays: int, chart_rows: int, threads: int) -> dict:
    """Write the synthetic MIMIC-IV folder with DuckDB; return row counts."""
    import duckdb

    (folder / "hosp").mkdir(parents=True, exist_ok=True)
    (folder / "icu").mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SELECT setseed(0.42)")
    con.execute(
        f"""
        CREATE TABLE s AS
        SELECT i, 10000000 + i AS subject_id, 20000000 + i AS hadm_id, 30000000 + i AS stay_id,
               TIMESTAMP '2150-01-01' + to_minutes(CAST(i * 37 % 500000 AS BIGINT)) AS admit,
               18 + CAST(random() * 72 AS INTEGER) AS age,
               48 + CAST(random() * 96 AS INTEGER) AS los_h,
               random() < 0.15 AS dies
        FROM range({stays}) t(i)
        """
    )
    con.execute(
        "CREATE TABLE st AS SELECT *, admit + INTERVAL 6 HOUR AS intime, "
        "admit + INTERVAL 6 HOUR + to_hours(los_h) AS outtime FROM s"
    )

    def copy(sql: str, path: str) -> int:
        target = folder / path
        copied = con.execute(
            f"COPY ({sql}) TO '{target}' (HEADER, DELIMITER ',', COMPRESSION gzip)"
        )
        return int(copied.fetchone()[0])  # COPY answers the number of rows written

    counts = {}
    counts["patients"] = copy(
        "SELECT subject_id, CASE WHEN i % 2 = 0 THEN 'M' ELSE 'F' END AS gender, "
        "age AS anchor_age, 2150 AS anchor_year, '2008 - 2010' AS anchor_year_group, "
        "CASE WHEN dies THEN CAST(outtime AS DATE) END AS dod FROM st",
        "hosp/patients.csv.gz",
    )
    counts["admissions"] = copy(
        "SELECT subject_id, hadm_id, admit AS admittime, outtime + INTERVAL 2 DAY AS dischtime, "
        "CASE WHEN dies THEN outtime END AS deathtime, 'EW EMER.' AS admission_type, "
        "NULL AS admit_provider_id, 'EMERGENCY ROOM' AS admission_location, "
        "CASE WHEN dies THEN 'DIED' ELSE 'HOME' END AS discharge_location, "
        "'Other' AS insurance, 'ENGLISH' AS language, NULL AS marital_status, "
        "'WHITE' AS race, NULL AS edregtime, NULL AS edouttime, "
        "CAST(dies AS INTEGER) AS hospital_expire_flag FROM st",
        "hosp/admissions.csv.gz",
    )
    counts["icustays"] = copy(
        "SELECT subject_id, hadm_id, stay_id, 'MICU' AS first_careunit, 'MICU' AS last_careunit, "
        "intime, outtime, los_h / 24.0 AS los FROM st",
        "icu/icustays.csv.gz",
    )
    vitals = _sql_rows(VITALS)
    per_hour = len(VITALS)
    filler = max(chart_rows - 90 * per_hour, 0)
    counts["chartevents"] = copy(
        f"""
        SELECT subject_id, hadm_id, stay_id, 1 AS caregiver_id, charttime,
               charttime AS storetime, itemid, CAST(round(v, 1) AS VARCHAR) AS value,
               round(v, 1) AS valuenum, '' AS valueuom, 0 AS warning
        FROM (
            SELECT st.*, it.itemid, intime + to_minutes(h * 60 + it.n) AS charttime,
                   it.mu + it.sd * (random() + random() + random() - 1.5) * 2 AS v
            FROM st, range(0, 144) r(h), {vitals}
            WHERE h < los_h
            UNION ALL
            SELECT st.*, x.itemid, intime + to_hours(h) AS charttime, x.v
            FROM st, range(0, 144, 4) r(h),
                 (VALUES (220739, 3), (223900, 4), (223901, 6), (223835, 40)) x(itemid, v)
            WHERE h < los_h
            UNION ALL
            SELECT st.*, 226512, intime + INTERVAL 30 MINUTE, 60 + random() * 50 FROM st
            UNION ALL
            SELECT st.*, 224000 + (j % 400), intime + to_minutes(CAST(j * 2 AS BIGINT)), 1.0
            FROM st, range(0, {filler}) r(j)
        )
        """,
        "icu/chartevents.csv.gz",
    )
    labs = _sql_rows(LABS)
    counts["labevents"] = copy(
        f"""
        SELECT row_number() OVER () AS labevent_id, subject_id, hadm_id, NULL AS specimen_id,
               itemid, NULL AS order_provider_id, charttime, charttime AS storetime,
               CAST(round(v, 2) AS VARCHAR) AS value, round(v, 2) AS valuenum, '' AS valueuom,
               NULL AS ref_range_lower, NULL AS ref_range_upper, NULL AS flag,
               'ROUTINE' AS priority, NULL AS comments
        FROM (
            SELECT st.*, it.itemid, admit + to_hours(h) AS charttime,
                   abs(it.mu + it.sd * (random() + random() + random() - 1.5) * 2) AS v
            FROM st, range(0, 168, 6) r(h), {labs}
        )
        """,
        "hosp/labevents.csv.gz",
    )
    counts["inputevents"] = copy(
        """
        SELECT subject_id, hadm_id, stay_id, 1 AS caregiver_id, starttime, endtime,
               endtime AS storetime, itemid, amount, amountuom, rate, rateuom,
               row_number() OVER () AS orderid, row_number() OVER () AS linkorderid,
               NULL AS ordercategoryname, NULL AS secondaryordercategoryname,
               NULL AS ordercomponenttypedescription, NULL AS ordercategorydescription,
               weight AS patientweight, NULL AS totalamount, NULL AS totalamountuom,
               0 AS isopenbag, 0 AS continueinnextdept, 'FinishedRunning' AS statusdescription,
               amount AS originalamount, rate AS originalrate
        FROM (
            SELECT st.*, 75.0 AS weight, 225158 AS itemid, intime + to_hours(h) AS starttime,
                   intime + to_hours(h + 1) AS endtime, 80.0 AS amount, 'ml' AS amountuom,
                   80.0 AS rate, 'mL/hour' AS rateuom
            FROM st, range(0, 144) r(h) WHERE h < los_h
            UNION ALL
            SELECT st.*, 75.0, 225158, intime + to_hours(h), intime + to_hours(h)
                   + INTERVAL 15 MINUTE, 500.0, 'ml', NULL, NULL
            FROM st, range(2, 30, 8) r(h) WHERE i % 3 = 0
            UNION ALL
            SELECT st.*, 75.0, 221906, intime + to_hours(h), intime + to_hours(h + 2),
                   0.5, 'mg', 0.02 + random() * 0.4, 'mcg/kg/min'
            FROM st, range(4, 40, 2) r(h) WHERE i % 2 = 0
        )
        """,
        "icu/inputevents.csv.gz",
    )
    counts["outputevents"] = copy(
        "SELECT subject_id, hadm_id, stay_id, 1 AS caregiver_id, "
        "intime + to_hours(h) AS charttime, intime + to_hours(h) AS storetime, 226559 AS itemid, "
        "round(random() * 120, 0) AS value, 'ml' AS valueuom "
        "FROM st, range(1, 144) r(h) WHERE h < los_h",
        "icu/outputevents.csv.gz",
    )
    counts["prescriptions"] = copy(
        "SELECT subject_id, hadm_id, row_number() OVER () AS pharmacy_id, NULL AS poe_id, "
        "NULL AS poe_seq, NULL AS order_provider_id, admit + to_hours(h) AS starttime, "
        "admit + to_hours(h + 24) AS stoptime, 'MAIN' AS drug_type, "
        "CASE WHEN h = 8 AND i % 5 <> 4 THEN 'Vancomycin' ELSE 'Acetaminophen' END AS drug, "
        "NULL AS formulary_drug_cd, NULL AS gsn, NULL AS ndc, NULL AS prod_strength, "
        "NULL AS form_rx, NULL AS dose_val_rx, NULL AS dose_unit_rx, NULL AS form_val_disp, "
        "NULL AS form_unit_disp, NULL AS doses_per_24_hrs, 'IV' AS route "
        "FROM st, range(0, 120, 4) r(h)",
        "hosp/prescriptions.csv.gz",
    )
    counts["microbiologyevents"] = copy(
        "SELECT row_number() OVER () AS microevent_id, subject_id, hadm_id, "
        "NULL AS micro_specimen_id, NULL AS order_provider_id, "
        "CAST(admit + to_hours(h) AS DATE) AS chartdate, admit + to_hours(h) AS charttime, "
        "NULL AS spec_itemid, 'BLOOD CULTURE' AS spec_type_desc, 1 AS test_seq, "
        "NULL AS storedate, NULL AS storetime, NULL AS test_itemid, 'culture' AS test_name, "
        "NULL AS org_itemid, NULL AS org_name, NULL AS isolate_num, NULL AS quantity, "
        "NULL AS ab_itemid, NULL AS ab_name, NULL AS dilution_text, "
        "NULL AS dilution_comparison, NULL AS dilution_value, NULL AS interpretation, "
        "NULL AS comments FROM st, range(6, 60, 12) r(h)",
        "hosp/microbiologyevents.csv.gz",
    )
    con.close()
    return counts


# The extraction runs as `safer cohort mimic` in a child that prints its own peak resident memory
# (VmHWM of /proc/self/status, Linux) on exit: getrusage's maxrss of a child would count the
# parent's pages it shared before exec (the generator's), so it cannot be used here.
_CHILD = (
    "import atexit, sys\n"
    "def peak():\n"
    "    hwm = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
    "    print('VmHWM_kB', hwm, file=sys.stderr)\n"
    "atexit.register(peak)\n"
    "from safer.cli import main\n"
    "main(sys.argv[1:])\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stays", type=int, default=30_000)
    parser.add_argument("--chart-rows", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-limit", default="6GB")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/safer-mimic-scale"))
    parser.add_argument("--keep", action="store_true", help="Keep the synthetic folder.")
    parser.add_argument(
        "--reuse", action="store_true", help="Time the extraction on a folder kept by --keep."
    )
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/mimic_scale.md"))
    args = parser.parse_args()

    folder = args.folder
    counts_file = folder / "counts.json"
    if args.reuse and counts_file.is_file():
        counts, gen_s = json.loads(counts_file.read_text()), float("nan")
    else:
        if folder.exists():
            shutil.rmtree(folder)
        start = time.perf_counter()
        counts = write_folder(folder, args.stays, args.chart_rows, args.threads)
        gen_s = time.perf_counter() - start
        counts_file.write_text(json.dumps(counts))
    size = sum(p.stat().st_size for p in folder.rglob("*.csv.gz"))
    made = "reused" if gen_s != gen_s else f"wrote in {gen_s:.0f} s"
    print(f"{folder} ({size / 2**30:.2f} GiB gz) {made}: {counts}", file=sys.stderr)

    out_cohort = folder / "cohort" / "cohort.parquet"
    args_ = ["cohort", "mimic", "--source", str(folder), "--version", "iv", "--out",
             str(out_cohort), "--threads", str(args.threads), "--memory-limit",
             args.memory_limit, "--json"]  # fmt: skip
    cmd = [sys.executable, "-c", _CHILD, *args_]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"extraction failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    peak_gib = int(proc.stderr.strip().splitlines()[-1].split()[1]) / 2**20
    summary = json.loads(proc.stdout)
    rows = [
        header("MIMIC-IV extraction at scale (synthetic MIMIC-IV-shaped folder)", "duckdb"),
        "",
        f"Synthetic folder: {args.stays:,} ICU stays (one per patient), "
        f"{size / 2**30:.2f} GiB of .csv.gz"
        + (
            " (written by an earlier run of this script with --keep)"
            if gen_s != gen_s
            else f", written in {gen_s:.0f} s"
        )
        + "; rows per table: "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
        + ".",
        "",
        "| measured | value | target |",
        "|---|---|---|",
        f"| extraction wall time (`safer cohort mimic`, {args.threads} DuckDB threads) "
        f"| {wall:.0f} s ({wall / 60:.1f} min) | <= 10 min |",
        f"| peak resident memory of the extraction process (memory limit {args.memory_limit}) "
        f"| {peak_gib:.2f} GiB | <= 8 GiB |",
        f"| cohort | {summary['stays']:,} stays, {summary['steps']:,} steps | |",
        f"| stay funnel | {summary['funnel']} | |",
    ]
    write_page(
        args.out,
        rows,
        "The data are synthetic (random values in MIMIC-IV's layout), so only the time and "
        "memory mean anything here, not the cohort's counts. Peak memory is the extraction "
        "process's high-water resident set (VmHWM) read by itself on exit.",
    )
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
