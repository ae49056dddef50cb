"""MIMIC-III and MIMIC-IV → the cohort table (PhysioNet CSV folders, PostgreSQL; MEDS in
:mod:`safer.cohorts.meds`).

One canonical layer (:mod:`~safer.cohorts.mimic.canonical`) that every source fills, concepts
defined once over it (:mod:`~safer.cohorts.mimic.concepts`), one block builder
(:mod:`~safer.cohorts.mimic.blocks`); the item dictionaries in
:mod:`~safer.cohorts.mimic.items`. See docs/cohort.md, "Your MIMIC data".
"""

from safer.cohorts.mimic.blocks import CohortBuild, ExtractionConfig
from safer.cohorts.mimic.build import build_mimic_cohort, open_source
from safer.cohorts.mimic.canonical import ExtractionConfigError, SourceError, SourceInfo
from safer.cohorts.mimic.concepts import NE_EQUIVALENT
from safer.cohorts.mimic.sources import MimicFolder, MimicPostgres
from safer.cohorts.mimic.summary import table_one, write_build

__all__ = [
    "NE_EQUIVALENT",
    "CohortBuild",
    "ExtractionConfig",
    "ExtractionConfigError",
    "MimicFolder",
    "MimicPostgres",
    "SourceError",
    "SourceInfo",
    "build_mimic_cohort",
    "open_source",
    "table_one",
    "write_build",
]
