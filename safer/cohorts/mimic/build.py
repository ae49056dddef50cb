"""Build the Sepsis-3 cohort table from MIMIC-III or MIMIC-IV (a CSV folder or PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from safer.cohorts.mimic._engine import run_build
from safer.cohorts.mimic.blocks import CohortBuild, ExtractionConfig
from safer.cohorts.mimic.canonical import CANONICAL
from safer.cohorts.mimic.sources import MimicFolder, MimicPostgres

__all__ = ["open_source", "build_mimic_cohort"]


def open_source(
    source: str | Path,
    version: str,
    *,
    notes: str | Path | None = None,
    schemas: dict[str, str] | None = None,
) -> MimicFolder | MimicPostgres:
    """A :class:`MimicFolder` for a path, a :class:`MimicPostgres` for a SQLAlchemy URL."""
    text = str(source)
    if "://" in text:
        return MimicPostgres(text, version, schemas)
    return MimicFolder(Path(text), version, notes)


def build_mimic_cohort(
    source: str | Path,
    version: str,
    config: ExtractionConfig | None = None,
    *,
    notes: str | Path | None = None,
    schemas: dict[str, str] | None = None,
    progress: bool = True,
) -> CohortBuild:
    """Build the Sepsis-3 cohort table from MIMIC-III v1.4 or MIMIC-IV.

    Parameters
    ----------
    source : path or str
        A PhysioNet folder (MIMIC-IV: holding ``hosp/`` and ``icu/``; MIMIC-III: holding
        ``ADMISSIONS.csv.gz``...), read in place, or a SQLAlchemy URL of a mimic-code
        PostgreSQL build (``postgresql+psycopg2://user:password@host/db``).
    version : {"iii", "iv"}
    config : ExtractionConfig, optional
        Cohort settings; see :class:`~safer.cohorts.mimic.ExtractionConfig`.
    notes : path, optional
        MIMIC-IV-Note's folder (default ``source/note`` when present).
    schemas : mapping, optional
        PostgreSQL schema per module (:attr:`MimicPostgres.DEFAULT_SCHEMAS`).
    progress : bool
        One progress bar advancing per stage (stderr).

    Returns
    -------
    CohortBuild
        ``table`` (validated), ``summary``, ``onsets``, ``statements``.

    Raises
    ------
    SourceError
        Not MIMIC, the wrong version, missing tables (named, with what is lost), a database
        that cannot be reached, or no stay meeting the cohort definition.
    """
    config = config or ExtractionConfig()
    src = open_source(source, version, notes=notes, schemas=schemas)
    label = f"MIMIC-{src.version.upper()} cohort"
    return run_build(lambda con, stage: src.fill(con, stage), len(CANONICAL), label, config,
                     progress)  # fmt: skip
