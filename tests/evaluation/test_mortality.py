from __future__ import annotations

import pytest

from safer.errors import SaferError
from safer.evaluation.mortality import (
    exact_mortality,
    mortality_table,
    rollout_mortality,
    true_mortality,
    wilson_interval,
)
from safer.evaluation.policies import GatedPolicy, ModelPolicy, clinician_policy, make_policy

REFERENCES = {"clinician": 0.218, "clinician-mode": 0.213, "random": 0.220, "optimal": 0.125}


@pytest.mark.parametrize("spec", sorted(REFERENCES))
def test_exact_mortality_reproduces_the_published_references(spec):
    assert exact_mortality(make_policy(spec)) == pytest.approx(REFERENCES[spec], abs=0.0006)


@pytest.mark.parametrize("spec", sorted(REFERENCES))
def test_rollout_agrees_with_exact_within_its_interval(spec):
    res = true_mortality(make_policy(spec), episodes=20_000, seed=3, progress=False)
    assert res.method == "exact"
    assert res.rollout.ci_low <= res.exact <= res.rollout.ci_high
    assert res.rollout.ci_high - res.rollout.ci_low < 0.015


def test_rollout_is_seeded():
    a = rollout_mortality(make_policy("clinician"), 3000, seed=5, progress=False)
    b = rollout_mortality(make_policy("clinician"), 3000, seed=5, progress=False)
    c = rollout_mortality(make_policy("clinician"), 3000, seed=6, progress=False)
    assert a.deaths == b.deaths and a.deaths != c.deaths


def test_observed_rollout_of_the_clinicians_matches_their_exact_mortality():
    # acting on EHR-like rows (with notes) must not change the clinicians' outcome distribution
    res = rollout_mortality(clinician_policy(), 2500, seed=1, observed=True, progress=False)
    assert res.observed and res.decisions > 2500
    assert res.ci_low <= exact_mortality(clinician_policy()) <= res.ci_high


def test_model_and_gated_policies_roll_out_with_an_abstention_rate(cloned_model, cloned_gate):
    model = rollout_mortality(ModelPolicy(cloned_model), 400, seed=0, progress=False)
    assert model.observed and model.abstention_rate is None
    assert 0.0 < model.mortality < 0.6
    gated = true_mortality(GatedPolicy(cloned_model, cloned_gate), 400, seed=0, progress=False)
    assert gated.method == "rollout" and gated.exact is None
    assert 0.0 < gated.rollout.abstention_rate < 1.0
    with pytest.raises(SaferError, match="not state-based"):
        exact_mortality(ModelPolicy(cloned_model))


def test_wilson_interval_and_bad_input():
    low, high = wilson_interval(0, 50)
    assert low == pytest.approx(0.0, abs=1e-12) and 0 < high < 0.1
    with pytest.raises(SaferError, match="positive integer"):
        rollout_mortality(make_policy("random"), 0)


def test_mortality_table_states_units_and_orders_rows():
    table = mortality_table(
        {"clinicians": make_policy("clinician"), "optimal": make_policy("optimal")},
        episodes=300,
        progress=False,
    )
    assert table["policy"].tolist() == ["clinicians", "optimal"]
    assert table["mortality_pct"].round(1).tolist() == [21.8, 12.5]
    assert "absolute" in table.attrs["units"]


class _Recorder(ModelPolicy):
    """The model policy, keeping every history it was shown."""

    def __init__(self, model):
        super().__init__(model)
        self.seen = []

    def decide(self, histories, rng=None):
        self.seen.append(histories.copy())
        return super().decide(histories, rng)


def test_rollout_histories_carry_past_actions_and_doses_like_a_cohort(cloned_model):
    from safer.cohorts import validate

    policy = _Recorder(cloned_model)
    rollout_mortality(policy, 50, seed=2, progress=False)
    late = policy.seen[3]
    past = late[late.step < 3]
    chosen = cloned_model.predict_proba(past.drop(columns=["true_state", "true_sofa"]))
    assert (past.action == chosen.argmax(axis=1)).all()
    assert (past.action == 5 * past.fluid_bin + past.vaso_bin).all()
    assert ((past.fluid_bin == 0) == (past.fluid_ml == 0)).all()
    assert (late.note_time.isna() | (late.note_time <= late.charttime)).all()
    validate(late)


def test_sharded_rollout_does_not_depend_on_the_number_of_processes(cloned_model, cloned_gate):
    policy = GatedPolicy(cloned_model, cloned_gate)
    one = rollout_mortality(policy, 150, seed=4, shard_size=50, jobs=1, progress=False)
    two = rollout_mortality(policy, 150, seed=4, shard_size=50, jobs=2, progress=False)
    assert (one.deaths, one.decisions, one.abstention_rate) == (
        two.deaths, two.decisions, two.abstention_rate
    )  # fmt: skip
    assert one.episodes == 150 and one.abstention_rate is not None


def test_shards_draw_independent_reproducible_streams():
    clinician = make_policy("clinician")
    run = lambda **kw: rollout_mortality(clinician, 3000, seed=5, progress=False, **kw)  # noqa: E731
    a, b = run(shard_size=700), run(shard_size=700)
    assert (a.deaths, a.decisions) == (b.deaths, b.decisions)  # 5 shards, the last of 200
    whole = run()
    assert (a.deaths, a.decisions) != (whole.deaths, whole.decisions)  # other streams ...
    exact, se = exact_mortality(clinician), (0.22 * 0.78 / 3000) ** 0.5
    assert abs(a.mortality - exact) < 4 * se  # ... the same distribution (a 4-sigma band)
    with pytest.raises(SaferError, match="shard_size"):
        run(jobs=2)


@pytest.mark.parametrize("kwargs", [{}, {"shard_size": 100, "jobs": 2}])
def test_ray_rollouts_need_shards_and_one_job(kwargs):
    # checked before Ray is imported: the message holds whether or not the extra is installed
    with pytest.raises(SaferError, match="ray='auto' runs shards as Ray tasks"):
        rollout_mortality(make_policy("clinician"), 300, progress=False, ray="auto", **kwargs)
