"""MIMIC-III and MIMIC-IV → the cohort table (PhysioNet CSV folders, PostgreSQL; MEDS in
:mod:`safer.cohorts.meds`)."""

from safer.cohorts.mimic.blocks import CohortBuild, ExtractionConfig
from safer.cohorts.mimic.canonical import ExtractionConfigError, SourceError, SourceInfo
from safer.cohorts.mimic.concepts import NE_EQUIVALENT

__all__ = [
    "NE_EQUIVALENT",
    "CohortBuild",
    "ExtractionConfig",
    "ExtractionConfigError",
    "SourceError",
    "SourceInfo",
]
