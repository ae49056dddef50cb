from __future__ import annotations

import numpy as np
import pytest

from safer.cohorts import load_mdp, model_columns
from safer.errors import NotFittedError, SaferError
from safer.evaluation.mortality import exact_mortality
from safer.evaluation.ope import OffPolicyEvaluator, OPEConfig
from safer.evaluation.policies import StatePolicy, clinician_mode_policy, make_policy

FAST = dict(bootstrap=40, fqe_steps=150, bc_steps=150, fqe_hidden=(32,))


@pytest.fixture(scope="module")
def evaluator(small_cohort):
    return OffPolicyEvaluator(OPEConfig(**FAST)).fit(small_cohort)


@pytest.fixture(scope="module")
def softened():
    # a softened clinician policy: half the clinicians' distribution, half their usual action
    mdp = load_mdp()
    mix = 0.5 * mdp.expert_policy[:713] + 0.5 * clinician_mode_policy().matrix[:713]
    return StatePolicy(mix, "softened")


@pytest.fixture(scope="module")
def softened_report(evaluator, softened):
    return evaluator.evaluate(softened)


def test_evaluate_before_fit_says_call_fit_first():
    with pytest.raises(NotFittedError, match="call fit first"):
        OffPolicyEvaluator().evaluate(make_policy("random"))


def test_unknown_estimator_lists_the_known_ones(small_cohort):
    with pytest.raises(SaferError, match="known: wis, pdwis, dr, fqe, outcome"):
        OffPolicyEvaluator(OPEConfig(estimators=("magic",))).fit(small_cohort)


def test_best_estimator_is_within_two_points_on_a_clinician_like_policy(softened, softened_report):
    truth = exact_mortality(softened)
    table = softened_report.table(truth)
    assert set(table.estimator) == {"wis", "pdwis", "dr", "fqe", "outcome"}
    assert np.allclose(table.error_points, 100 * (table.mortality_pct / 100 - truth))
    assert table.error_points.abs().min() < 2.0
    best = table.loc[table.error_points.abs().idxmin()]
    assert best.ci_low_pct <= best.mortality_pct <= best.ci_high_pct


def test_fqe_and_dr_run_through_d3rlpy_and_json_says_absolute_mortality(softened_report):
    # a tiny FQE run (150 steps): this checks the wiring and the report, not FQE's accuracy
    report = softened_report
    assert 0.3 < report.fqe_policy_agreement <= 1.0
    payload = report.to_dict(truth=0.215)
    assert "absolute" in payload["units"] and "points" in payload["units"]
    assert set(payload["estimates"]) == {"wis", "pdwis", "dr", "fqe", "outcome"}
    fqe = payload["estimates"]["fqe"]
    assert 0.0 <= fqe["mortality"] <= 1.0 and fqe["ci_low"] <= fqe["ci_high"]


def test_state_policies_cannot_be_estimated_on_real_ehr(small_cohort):
    few = small_cohort[small_cohort.stay_id.isin(small_cohort.stay_id.unique()[:40])]
    real = few[model_columns(few)]
    ope = OffPolicyEvaluator(OPEConfig(estimators=("wis",), bootstrap=10)).fit(real)
    with pytest.raises(SaferError, match="true_state"):
        ope.evaluate(make_policy("clinician"))
    assert np.isfinite(ope.evaluate(make_policy("random")).estimates["wis"].mortality)
