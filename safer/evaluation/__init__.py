"""Evaluation: policies, true counterfactual mortality and off-policy estimates."""

from safer.evaluation.mortality import (
    exact_mortality,
    mortality_table,
    rollout_mortality,
    true_mortality,
)
from safer.evaluation.policies import Policy, make_policy

__all__ = [
    "Policy",
    "exact_mortality",
    "make_policy",
    "mortality_table",
    "rollout_mortality",
    "true_mortality",
]
