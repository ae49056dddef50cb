"""``safer cohort``: simulate, validate and summarise cohort tables; build them from MIMIC or
MEDS."""

from __future__ import annotations

from pathlib import Path

import typer

from safer.cli._common import err_console, print_json, print_table

app = typer.Typer(
    help="Build (simulated, MIMIC-III/IV, MEDS), validate and summarise cohort tables.",
    no_args_is_help=True,
)


@app.command("simulate")
def simulate(
    stays: int = typer.Option(2000, "--stays", min=1, help="Number of ICU stays to simulate."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same table)."),
    out: Path = typer.Option(..., "--out", help="Output file: .parquet or .csv."),
    noise_scale: float = typer.Option(
        0.6, "--noise-scale", min=0.0, help="Within-state measurement noise (x within-cluster SD)."
    ),
    note_fill: float = typer.Option(
        0.85, "--note-fill", min=0.0, max=1.0, help="Fraction of steps that carry a note."
    ),
    shift: float = typer.Option(
        0.0,
        "--shift",
        help="Sicker initial states: d0 x exp(SHIFT x SOFA z-score); 0 = the "
        "documented cohort, 1 = a population drifted to sicker admissions (for drift checks).",
    ),  # fmt: skip
    chunk_stays: int = typer.Option(
        0,
        "--chunk-stays",
        min=0,
        help="Stream to a .parquet file in chunks of this many stays (bounded memory, for "
        "large cohorts; each chunk its own random stream, so a different draw from the "
        "one-shot table of the same seed). 0 = one table in memory.",
    ),  # fmt: skip
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Simulate EHR-like stays with notes from the embedded ICU-Sepsis MDP."""
    from safer.cohorts import (
        SimulationConfig,
        simulate_cohort,
        simulate_to_parquet,
        summarize,
        write_cohort,
    )

    config = SimulationConfig(noise_scale=noise_scale, note_fill=note_fill, shift=shift)
    if chunk_stays:
        streamed = simulate_to_parquet(out, stays, seed, chunk_stays=chunk_stays, config=config,
                                       progress=not json_out)  # fmt: skip
        summary = {"file": str(out), "shift": shift, **streamed}
    else:
        cohort = simulate_cohort(stays, seed, config=config, progress=not json_out)
        write_cohort(cohort, out)
        summary = {"file": str(out), "seed": seed, "shift": shift, **summarize(cohort)}
    if json_out:
        print_json(summary)
    else:
        print_table("simulated cohort", summary)


@app.command("validate")
def validate_file(
    file: Path = typer.Argument(..., help="Cohort file (.parquet or .csv)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Check a cohort file against the schema; list every problem, or summarise it."""
    from safer.cohorts import read_cohort, summarize

    cohort = read_cohort(file)
    summary = {"file": str(file), "valid": True, **summarize(cohort)}
    if json_out:
        print_json(summary)
    else:
        err_console.print(f"[green]ok:[/] {file} is a valid cohort table")
        print_table("cohort", summary)


def _extraction_config(formula, mortality, undated_notes, notes, memory_limit, threads):
    from safer.cohorts.mimic import ExtractionConfig

    return ExtractionConfig(
        vasopressor_formula=formula,
        mortality=mortality,
        undated_notes=undated_notes,
        notes=notes,
        memory_limit=memory_limit,
        threads=threads,
    ).check()


def _report(build, out: Path, json_out: bool) -> None:
    from safer.cohorts.mimic import write_build

    paths = write_build(build, out)
    summary = {**{k: str(v) for k, v in paths.items()}, **build.summary}
    if json_out:
        print_json(summary)
        return
    for line in build.statements:
        err_console.print(f"[yellow]note:[/] {line}", highlight=False)
    funnel = build.summary["funnel"]
    rows = {
        "cohort": paths["cohort"],
        "summary": paths["summary"],
        "table one": paths["table_one"],
        "stays": build.summary["stays"],
        "steps": build.summary["steps"],
        **{f"funnel: {k.replace('_', ' ')}": v for k, v in funnel.items()},
        "mortality": f"{build.summary['mortality']:.3f} ({build.summary['mortality_definition']})",
        "note fill": build.summary["note_fill"],
        "vasopressor formula": build.summary["vasopressor_formula"],
    }
    for key, q in (("fluid mL/4h", "fluid_ml_per_4h"), ("vaso ug/kg/min", "vaso_ugkgmin")):
        d = build.summary[q]
        if d.get("nonzero_steps"):
            rows[f"{key} (p5 / median / p95)"] = f"{d['p5']:g} / {d['median']:g} / {d['p95']:g}"
    print_table("real-EHR cohort", rows)
    missing = build.summary["feature_missing"]
    print_table("missing (fraction of steps)", {k: round(v, 3) for k, v in missing.items()})


_FORMULA = typer.Option(
    "goradia2020",
    "--vasopressor-formula",
    help="Norepinephrine equivalence: goradia2020 (mimic-code) or komorowski2018 (AI Clinician).",
)
_MORTALITY = typer.Option("hospital", "--mortality", help="Outcome: 'hospital' or '90d'.")
_UNDATED = typer.Option(
    "end_of_day",
    "--undated-notes",
    help="Notes with a date but no time: 'end_of_day' (readable from midnight) or 'exclude'.",
)
_NO_NOTES = typer.Option(True, "--notes/--no-notes", help="Attach notes charted before each step.")
_MEMORY = typer.Option(None, "--memory-limit", help="DuckDB memory limit, e.g. 6GB.")
_THREADS = typer.Option(None, "--threads", min=1, help="DuckDB threads (default: all cores).")


@app.command("mimic")
def mimic(
    source: str = typer.Option(
        ..., "--source", help="MIMIC folder (hosp/ + icu/, or MIMIC-III CSVs) or SQLAlchemy URL."
    ),
    version: str = typer.Option(..., "--version", help="MIMIC version: iii or iv."),
    out: Path = typer.Option(..., "--out", help="Output cohort file: .parquet or .csv."),
    note_folder: Path | None = typer.Option(
        None, "--note-folder", help="MIMIC-IV-Note folder (default: SOURCE/note when present)."
    ),
    schema: list[str] = typer.Option(
        [],
        "--schema",
        help="PostgreSQL schema of a module, MODULE=SCHEMA (e.g. hosp=mimiciv_hosp).",
    ),
    formula: str = _FORMULA,
    mortality: str = _MORTALITY,
    undated_notes: str = _UNDATED,
    notes: bool = _NO_NOTES,
    memory_limit: str | None = _MEMORY,
    threads: int | None = _THREADS,
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Build the Sepsis-3 cohort from MIMIC-III v1.4 or MIMIC-IV (CSV folder or PostgreSQL).

    Writes the cohort table, OUT's .summary.json and its .tableone.csv, or nothing on error.
    """
    from safer.cohorts.mimic import SourceError, build_mimic_cohort

    schemas = {}
    for item in schema:
        module, sep, name = item.partition("=")
        if not sep or not name:
            raise SourceError(f"--schema {item!r}: write MODULE=SCHEMA, e.g. icu=mimiciv_icu")
        schemas[module] = name
    config = _extraction_config(formula, mortality, undated_notes, notes, memory_limit, threads)
    build = build_mimic_cohort(
        source, version, config, notes=note_folder, schemas=schemas or None, progress=True
    )
    _report(build, out, json_out)


@app.command("meds")
def meds(
    data: Path = typer.Option(..., "--data", help="MEDS folder (data/*.parquet) or parquet file."),
    out: Path = typer.Option(..., "--out", help="Output cohort file: .parquet or .csv."),
    formula: str = _FORMULA,
    mortality: str = _MORTALITY,
    memory_limit: str | None = _MEMORY,
    threads: int | None = _THREADS,
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Build the Sepsis-3 cohort from a MEDS stream made from MIMIC-IV.

    Writes the cohort table, OUT's .summary.json and its .tableone.csv, or nothing on error.
    """
    from safer.cohorts.meds import build_meds_cohort

    config = _extraction_config(formula, mortality, "end_of_day", False, memory_limit, threads)
    build = build_meds_cohort(data, config, progress=True)
    _report(build, out, json_out)
