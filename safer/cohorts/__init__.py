"""Cohort tables: schema and validation, the simulated ICU-Sepsis cohort, notes and splits.

Nothing here imports a model: a researcher can build and validate cohorts on their own.
"""

from safer.cohorts.io import read_cohort, write_cohort
from safer.cohorts.schema import FEATURES, REQUIRED_COLUMNS, STATIC, model_columns, validate
from safer.cohorts.simulated import (
    IcuSepsisMDP,
    SimulationConfig,
    load_mdp,
    simulate_cohort,
    simulate_to_parquet,
)
from safer.cohorts.splits import DEFAULT_FRACTIONS, StaySplits, parse_fractions, split_stays
from safer.cohorts.summary import summarize

__all__ = [
    "DEFAULT_FRACTIONS",
    "FEATURES",
    "REQUIRED_COLUMNS",
    "STATIC",
    "IcuSepsisMDP",
    "SimulationConfig",
    "StaySplits",
    "load_mdp",
    "model_columns",
    "parse_fractions",
    "read_cohort",
    "simulate_cohort",
    "simulate_to_parquet",
    "split_stays",
    "summarize",
    "validate",
    "write_cohort",
]
