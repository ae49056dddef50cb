"""The conformal safety layer: arrays in, decisions out.

Three guarantees, each explicit about what it promises (see each module's docstring):

- :mod:`safer.conformal.selection` — conformal selection with Benjamini-Hochberg: FDR <= alpha
  among recommended decisions (Jin & Candès, 2023);
- :mod:`safer.conformal.sets` — MAPIE prediction sets (LAC / APS / RAPS, optionally Mondrian):
  coverage >= 1 - alpha; a recommendation only when the set is a single action;
- :mod:`safer.conformal.risk` — MAPIE learn-then-test: error rate of issued recommendations
  <= alpha with probability >= 1 - delta.

Those three modules are the engines, usable on their own. :mod:`safer.conformal.methods` wraps
each as a gate method (one class per file, named in :data:`METHODS`); :class:`Gate` bundles
one method's state with the hashes of the model and calibration data; :mod:`safer.conformal.report`
writes the auditor's report. Nothing here imports a model or the cohort schema.
"""

from safer.conformal._checks import (
    CalibrationTooSmallError,
    ConformalInputError,
    GateMismatchError,
    min_calibration_size,
)
from safer.conformal.gate import ABSTAIN, Decisions, Gate, calibrate_gate, load_gate
from safer.conformal.methods import METHODS, GateMethod
from safer.conformal.risk import RiskControl
from safer.conformal.selection import ConformalSelector, benjamini_hochberg, conformal_pvalues
from safer.conformal.sets import PredictionSets

__all__ = [
    "ABSTAIN",
    "METHODS",
    "CalibrationTooSmallError",
    "ConformalInputError",
    "ConformalSelector",
    "Decisions",
    "Gate",
    "GateMethod",
    "GateMismatchError",
    "PredictionSets",
    "RiskControl",
    "benjamini_hochberg",
    "calibrate_gate",
    "conformal_pvalues",
    "load_gate",
    "min_calibration_size",
]
