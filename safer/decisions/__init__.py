"""The decisions stage: the one path from a model and a gate to decisions.

:func:`calibrate` a gate for a model on the calibration split, :func:`decide` rows (the model
hash is always checked), :func:`audit` the gate on the test split with subgroups, and
:func:`calibrate_and_audit` to do all three and write the gate and the auditor's report.
The store's :func:`safer.store.store_decisions` hands the resulting
:class:`~safer.conformal.Decisions` to the database; :class:`WhatIf` re-decides after an edit of
the vitals; :func:`top_factors` names the features the model's probability for a dose
depends on most (by replacing each with its training mean); :func:`drift_check` tests whether
live stays are still exchangeable with the calibration stays.

Imports flow one way: cohorts → models → conformal → **decisions** → evaluation / store →
clinical_ui.
"""

from safer.decisions.core import (
    NO_GATE_REASON,
    audit,
    calibrate,
    calibrate_and_audit,
    decide,
    model_version,
    most_likely,
    record_report,
    report_paths,
    subgroup_frame,
    trajectories,
    visible,
)
from safer.decisions.drift import DriftResult, conformity_scores, drift_check, drift_test
from safer.decisions.factors import FACTOR_COLUMNS, top_factors, training_reference
from safer.decisions.whatif import WhatIf, WhatIfError, WhatIfResult

__all__ = [
    "DriftResult",
    "FACTOR_COLUMNS",
    "NO_GATE_REASON",
    "WhatIf",
    "WhatIfError",
    "WhatIfResult",
    "audit",
    "calibrate",
    "calibrate_and_audit",
    "conformity_scores",
    "decide",
    "drift_check",
    "drift_test",
    "model_version",
    "most_likely",
    "record_report",
    "report_paths",
    "subgroup_frame",
    "top_factors",
    "training_reference",
    "trajectories",
    "visible",
]
