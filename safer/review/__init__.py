"""What the console shows, computed in the library: the patient queue, doses in clinical units,
the decision view's banner and trends, the auditor's readable trail, and how one value is
written (:func:`shown`: a missing one is an em dash, "not charted").

Sits above :mod:`safer.store` (it reads the store's tables) and below ``clinical_ui`` (whose
pages only lay these out). Everything here is unit-tested without a browser.

Examples
--------
>>> from safer.review import recommendation_text
>>> recommendation_text(-1, [0, 5, 10])
'defer: no vasopressor; IV fluid uncertain (none to 180 mL/4h)'
"""

from safer.review.decision import REFERENCE_RANGES, TREND_PANELS, banner, doses_given, trends
from safer.review.doses import (
    bins_text,
    dose_range,
    in_set,
    reason_in_words,
    recommendation_text,
    set_meaning,
)
from safer.review.factors import FEATURE_WORDS, factor_lines, feature_label
from safer.review.queue import QUEUE_STATUSES, QueuePage, next_patient, patient_queue, urgency
from safer.review.trail import TRAIL_COLUMNS, trail_table
from safer.review.values import MISSING, MISSING_HINT, is_missing, shown
from safer.review.whatif import VITAL_WORDS, series_table, vital_label, what_moved

__all__ = [
    "FEATURE_WORDS",
    "MISSING",
    "MISSING_HINT",
    "QUEUE_STATUSES",
    "REFERENCE_RANGES",
    "TRAIL_COLUMNS",
    "TREND_PANELS",
    "VITAL_WORDS",
    "QueuePage",
    "banner",
    "bins_text",
    "dose_range",
    "factor_lines",
    "feature_label",
    "doses_given",
    "in_set",
    "is_missing",
    "next_patient",
    "patient_queue",
    "reason_in_words",
    "recommendation_text",
    "series_table",
    "set_meaning",
    "shown",
    "trail_table",
    "trends",
    "urgency",
    "vital_label",
    "what_moved",
]
