"""Evaluation: recommendation metrics, policies, true counterfactual mortality and OPE.

Examples
--------
>>> import numpy as np
>>> from safer.evaluation import evaluate_predictions
>>> proba = np.full((4, 25), 1 / 25)
>>> evaluate_predictions(proba, np.array([0, 1, 2, 3]), np.array([0, 0, 1, 1]))["all"]["n"]
4
"""

from safer.evaluation.metrics import METRIC_NAMES, evaluate_predictions, recommendation_metrics
from safer.evaluation.mortality import (
    exact_mortality,
    mortality_table,
    rollout_mortality,
    true_mortality,
)
from safer.evaluation.policies import Policy, make_policy

__all__ = [
    "METRIC_NAMES",
    "Policy",
    "evaluate_predictions",
    "exact_mortality",
    "make_policy",
    "mortality_table",
    "recommendation_metrics",
    "rollout_mortality",
    "true_mortality",
]
