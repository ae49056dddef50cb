"""Diffusion-based time-series editing with point anchors and segment-statistic control.

Our implementation of CocktailEdit ("How to Unlock Time Series Editing? Diffusion-Driven
Approach with Multi-Grained Control"), written from the paper's description (no official code
exists). See docs/tsedit.md.
"""

from safer.tsedit.controls import (
    STATISTICS,
    Anchor,
    EditPlan,
    InfeasibleEditError,
    SegmentStat,
    edit_report,
    parse_anchor,
    parse_segment,
    resolve,
)
from safer.tsedit.data import (
    COVARIATES,
    VITALS,
    Normalizer,
    SeriesData,
    TseditDataError,
    cohort_windows,
    load_training_data,
    public_windows,
    read_series_csv,
    write_series_csv,
)
from safer.tsedit.model import DiffusionEditor, EditResult, TseditConfig
from safer.tsedit.transforms import ChannelTransforms

__all__ = [
    "COVARIATES",
    "STATISTICS",
    "VITALS",
    "Anchor",
    "ChannelTransforms",
    "DiffusionEditor",
    "EditPlan",
    "EditResult",
    "InfeasibleEditError",
    "Normalizer",
    "SegmentStat",
    "SeriesData",
    "TseditConfig",
    "TseditDataError",
    "cohort_windows",
    "edit_report",
    "load_training_data",
    "parse_anchor",
    "parse_segment",
    "public_windows",
    "read_series_csv",
    "resolve",
    "write_series_csv",
]
