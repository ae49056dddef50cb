"""The safe gate's machinery on a small MDP whose answer is known by hand, and the gate method
end to end on arrays (calibrate, decide with reasons, save / load, recalibrate, audit).

The hand MDP (two patient states, two doses; 0 / 1 below are action ids 0 and 1):

- state 0 (admission): dose 0 ends the stay at once, half survive; dose 1 moves to state 1;
- state 1: dose 0 -> 90 % survive, dose 1 -> 60 % survive.

Clinicians give each dose half the time in state 0 and dose 0 a fifth of the time in state 1,
so V_b(1) = 0.2 * 0.9 + 0.8 * 0.6 = 0.66, Q_b(0, 1) = 0.66, Q_b(0, 0) = 0.5,
V_b(0) = 0.58; the best policy (dose 1 then dose 0) survives 0.9.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from safer.conformal import calibrate_gate, load_gate
from safer.conformal.methods import PolicyEstimate, Trajectories
from safer.conformal.methods.spi import (
    GRID_MARGIN,
    GRID_WEDGE,
    SafePolicyImprovement,
    lac_quantile,
    select_knobs,
)
from safer.conformal.report import audit, render_html
from safer.conformal.sets import PredictionSets
from safer.conformal.spi import (
    ALGORITHMS,
    Episodes,
    TabularModel,
    is_lower_bound,
    paired_bootstrap,
    per_state_bootstrap,
    survival_values,
)
from safer.conformal.spi.improvement import lower_confidence
from safer.errors import SaferError


def hand_stays(reps: int = 1, *, harmful_state1: bool = False, seed: int | None = None):
    """Stays of the hand MDP in exact proportions (``reps`` copies of 400 stays), or sampled
    (``seed``). ``harmful_state1`` swaps state 1's doses (dose 0 -> 60 %, dose 1 -> 90 %).

    Returns per-decision arrays: state, stay, step, action, died.
    """
    rng = None if seed is None else np.random.default_rng(seed)
    good, bad = (0.6, 0.9) if harmful_state1 else (0.9, 0.6)
    rows = []
    stay = 0

    def outcome(p_survive, i, n):
        if rng is None:
            return int(i >= round(p_survive * n))  # the first p*n survive
        return int(rng.random() >= p_survive)

    for _ in range(reps):
        for i in range(200):  # dose 0 at admission
            rows.append((0, stay, 0, 0, outcome(0.5, i, 200)))
            stay += 1
        for i in range(200):  # dose 1 at admission, then state 1
            a1 = 0 if i < 40 else 1
            j, n = (i, 40) if a1 == 0 else (i - 40, 160)
            died = outcome(good if a1 == 0 else bad, j, n)
            rows.append((0, stay, 0, 1, died))
            rows.append((1, stay, 1, a1, died))
            stay += 1
    return tuple(np.array(c) for c in zip(*rows, strict=True))


def hand_episodes(**kw) -> Episodes:
    state, stay, step, action, died = hand_stays(**kw)
    return Episodes.from_decisions(state, stay, step, action, died, n_states=2)


# -- the tabular model -----------------------------------------------------------------------


def test_episodes_link_steps_and_end_in_the_outcome_whatever_the_row_order():
    ep = Episodes.from_decisions(
        states=[1, 0, 0], stay=[9, 9, 3], step=[1, 0, 0], action=[4, 2, 0], died=[0, 0, 1],
        n_states=2,
    )  # fmt: skip
    # sorted by stay then step: stay 3 (one decision, died), stay 9 (0 -> 1 -> survived)
    assert ep.state.tolist() == [0, 0, 1] and ep.next_state.tolist() == [2, 1, 3]
    assert ep.first.tolist() == [True, True, False] and ep.order.tolist() == [2, 1, 0]
    with pytest.raises(SaferError, match="states must lie in 0..1"):
        Episodes.from_decisions([2], [1], [0], [0], [0], n_states=2)


def test_the_estimated_model_of_the_hand_mdp_is_the_hand_mdp():
    model = TabularModel(hand_episodes())
    np.testing.assert_allclose(model.behaviour[:, :2], [[0.5, 0.5], [0.2, 0.8]])
    values = model.evaluate(model.behaviour)
    np.testing.assert_allclose(values, [0.58, 0.66, 0.0, 1.0], atol=1e-6)
    q = model.q_values(values)
    np.testing.assert_allclose(q[0, :2], [0.5, 0.66], atol=1e-6)
    np.testing.assert_allclose(q[1, :2], [0.9, 0.6], atol=1e-6)
    assert model.value(model.behaviour) == pytest.approx(0.58, abs=1e-6)
    # an unlogged dose takes its state's average transition
    np.testing.assert_allclose(q[1, 7], 0.66, atol=1e-6)


def test_the_prior_shrinks_a_dose_toward_its_state_average():
    plain, shrunk = TabularModel(hand_episodes()), TabularModel(hand_episodes(), prior=40.0)
    v = plain.evaluate(plain.behaviour)
    # state 1, dose 0: 40 decisions; (40 * 0.9 + 40 * 0.66) / 80
    assert shrunk.q_values(v)[1, 0] == pytest.approx((40 * 0.9 + 40 * 0.66) / 80, abs=1e-6)


def test_survival_values_of_a_known_chain():
    chain = np.zeros((1, 2, 4))
    chain[0, 0] = [0.0, 1.0, 0.0, 0.0]  # 0 -> 1
    chain[0, 1] = [0.0, 0.5, 0.25, 0.25]  # 1 stays half the time, else dies or survives
    np.testing.assert_allclose(survival_values(chain)[0], [0.5, 0.5, 0.0, 1.0], atol=1e-6)


# -- the improvement algorithms --------------------------------------------------------------


def test_one_step_and_value_iteration_find_the_hand_answer():
    model = TabularModel(hand_episodes())
    for name in ("one-step", "support-vi", "pib-spibb", "pileb-spibb"):
        p = ALGORITHMS[name](model, n_wedge=10)
        assert p.policy[:, :2].argmax(axis=1).tolist() == [1, 0], name
    vi = ALGORITHMS["support-vi"](model, n_wedge=10)
    assert vi.values[0] == pytest.approx(0.9, abs=1e-6)


def test_the_lower_confidence_bound_of_a_hand_pair():
    model = TabularModel(hand_episodes())
    v_b = model.evaluate(model.behaviour)
    lower = lower_confidence(model, v_b, kappa=2.0)
    # state 1, dose 0: 40 stays, 90 % survive -> Var = 0.9 * 0.1, se = sqrt(0.09 / 40)
    assert lower[1, 0] == pytest.approx(0.9 - 2.0 * np.sqrt(0.09 / 40))
    # state 0, dose 1 always leads to state 1: no spread of V(s'), no penalty
    assert lower[0, 1] == pytest.approx(0.66)
    assert np.isneginf(lower[0, 2])  # never logged: no bound
    with pytest.raises(SaferError, match="kappa"):
        lower_confidence(model, v_b, kappa=-1.0)


def test_pessimism_keeps_the_clinicians_where_the_advantage_is_not_clear():
    model = TabularModel(hand_episodes())
    plain = ALGORITHMS["lcb"](model, n_wedge=10, kappa=0.0)
    assert plain.policy[:, :2].argmax(axis=1).tolist() == [1, 0]  # the hand answer
    # kappa = 10: dose 0 in state 1 (0.9 - 10 * 0.047 = 0.43) no longer beats V_b(1) = 0.66,
    # while dose 1 in state 0 (0.66, no spread) still beats V_b(0) = 0.58
    careful = ALGORITHMS["lcb"](model, n_wedge=10, kappa=10.0)
    np.testing.assert_allclose(careful.policy[0, :2], [0.0, 1.0])
    np.testing.assert_allclose(careful.policy[1, :2], [0.2, 0.8])


def test_bootstrapped_doses_are_kept_as_the_clinicians_give_them():
    model = TabularModel(hand_episodes())  # state 1, dose 0 logged 40 times: bootstrapped at 50
    pib = ALGORITHMS["pib-spibb"](model, n_wedge=50)
    np.testing.assert_allclose(pib.policy[1, :2], [0.2, 0.8])  # pi_b kept in state 1
    np.testing.assert_allclose(pib.policy[0, :2], [0.0, 1.0])  # both doses trusted in state 0
    pileb = ALGORITHMS["pileb-spibb"](model, n_wedge=50)
    np.testing.assert_allclose(pileb.policy[1, :2], [0.2, 0.8])  # at most pi_b on dose 0
    one = ALGORITHMS["one-step"](model, n_wedge=50)
    assert one.policy[1, :2].tolist() == [0.0, 1.0]  # greedy among trusted doses: worse here


def test_soft_spibb_moves_mass_within_its_budget_and_never_against_the_advantage():
    model = TabularModel(hand_episodes(reps=5))
    small = ALGORITHMS["adv-soft-spibb"](model, epsilon=0.05)
    large = ALGORITHMS["adv-soft-spibb"](model, epsilon=5.0)
    assert 0.2 < small.policy[1, 0] < large.policy[1, 0]  # toward dose 0, more with more budget
    assert large.values[0] > small.values[0] > model.evaluate(model.behaviour)[0]
    q_b = model.q_values(model.evaluate(model.behaviour))
    for p in (small, large):
        assert ((p.policy - model.behaviour) * q_b).sum(axis=1).min() >= -1e-9


# -- the safety test ---------------------------------------------------------------------------


def test_the_paired_bootstrap_deploys_the_better_policy_and_refuses_the_worse():
    ep = hand_episodes(seed=0, reps=2)
    better = paired_bootstrap(ep, np.array([1, 0]), np.ones(2), delta=0.05, n_boot=300)
    assert better.estimate == pytest.approx(0.9 - 0.58, abs=0.06) and better.lower > 0.15
    worse = paired_bootstrap(ep, np.array([0, 0]), np.array([1.0, 0.0]), delta=0.05, n_boot=300)
    assert worse.estimate == pytest.approx(0.5 - 0.58, abs=0.05) and worse.upper < 0
    same = paired_bootstrap(ep, np.array([1, 0]), np.zeros(2), delta=0.05, n_boot=50)
    assert same.estimate == 0.0 and same.lower == 0.0  # deferring everywhere changes nothing


def test_per_state_bounds_certify_only_the_helpful_state():
    ep = hand_episodes(seed=1, reps=3)
    bounds = per_state_bootstrap(ep, np.array([0, 0]), np.ones(2), delta=0.05, n_boot=300)
    assert bounds[1] > 0 > bounds[0]  # dose 0 helps in state 1, harms at admission


def test_the_importance_sampling_bound_is_valid_and_loose():
    ep = hand_episodes(seed=2, reps=3)
    behaviour = TabularModel(hand_episodes()).behaviour  # the true clinicians' probabilities
    bound = is_lower_bound(ep, np.array([1, 0]), np.ones(2), behaviour, delta=0.05)
    assert -1.0 <= bound < 0.9 - 0.58


# -- the gate method on arrays ---------------------------------------------------------------


def _arrays(seed: int, *, harmful_state1: bool = False, reps: int = 2):
    state, stay, step, action, died = hand_stays(
        reps=reps, seed=seed, harmful_state1=harmful_state1
    )
    rng = np.random.default_rng(seed)
    X = np.c_[state * 5.0, state * 5.0] + rng.normal(0, 0.1, (len(state), 2))
    proba = np.full((len(state), 25), 0.02)
    proba[:, :2] = 0.27
    return X, Trajectories.of(stay + 10_000 * seed, step, action, died), proba, state


def _gate(harmful_cal: bool = False, **options):
    X_tr, t_tr, _, _ = _arrays(1)
    X_cal, t_cal, p_cal, _ = _arrays(2, harmful_state1=harmful_cal)
    return calibrate_gate(
        "spi", p_cal, t_cal.action, alpha=0.1, delta=0.05, model_hash="m",
        embedding_train=X_tr, embedding_cal=X_cal, trajectories_train=t_tr,
        trajectories_cal=t_cal, options={"n_states": 2, "n_boot": 200, "n_wedge": 10, **options},
    )  # fmt: skip


def test_the_gate_learns_the_hand_answer_and_explains_it(tmp_path):
    gate = _gate()
    t = gate.thresholds
    assert t["deployed"] and t["gain_lower"] > 0.1 and t["action_rate"] > 0.9
    assert not gate.abstains_everywhere
    X, _, proba, state = _arrays(3)
    d = gate.decide(proba, embedding=X, model_hash="m")
    np.testing.assert_array_equal(d.action, np.where(state == 0, 1, 0))
    assert d.sets[np.arange(len(state)), d.action].all()
    assert d.reason[0].startswith("Suggest IV fluid none, vasopressor")
    assert "held-out stays: survival gain >=" in d.reason[0]
    # saved and read back: the same decisions, reasons and levels
    path = gate.save(tmp_path / "spi.json")
    loaded = load_gate(path, model_hash="m")
    again = loaded.decide(proba, embedding=X)
    np.testing.assert_array_equal(again.action, d.action)
    np.testing.assert_array_equal(again.reason, d.reason)
    assert loaded.delta == 0.05 and loaded.options["n_states"] == 2
    assert json.loads(path.read_text())["options"]["algorithm"] == "one-step"


def test_the_pessimistic_gate_reaches_the_hand_answer_too():
    gate = _gate(algorithm="lcb", kappa=1.0)
    assert gate.thresholds["deployed"] and gate.thresholds["algorithm"] == "lcb"
    X, _, proba, state = _arrays(3)
    d = gate.decide(proba, embedding=X, model_hash="m")
    np.testing.assert_array_equal(d.action, np.where(state == 0, 1, 0))


def test_the_gate_defers_everywhere_when_held_out_stays_contradict_the_candidate():
    gate = _gate(harmful_cal=True)  # training says dose 0 in state 1; calibration says harm
    assert not gate.thresholds["deployed"] and gate.thresholds["gain_lower"] < 0
    assert gate.abstains_everywhere
    X, _, proba, _ = _arrays(3)
    d = gate.decide(proba, embedding=X)
    assert (d.action == -1).all() and not d.sets.any()
    assert d.reason[0].startswith("Defer to usual care: the held-out safety test")


def test_the_plausibility_set_withholds_an_unusual_dose():
    gate = _gate()
    X, _, proba, state = _arrays(3)
    proba = proba.copy()
    proba[state == 1, 0], proba[state == 1, 1] = 0.001, 0.539  # dose 0 now implausible
    d = gate.decide(proba, embedding=X)
    assert (d.action[state == 1] == -1).all() and (d.action[state == 0] == 1).all()
    assert "outside what clinicians usually give" in d.reason[np.flatnonzero(state == 1)[0]]


def test_recalibration_and_the_audit_estimate_the_gain_on_test_stays():
    gate = _gate()
    other = gate.recalibrate(0.2)
    assert other.alpha == 0.2 and other.thresholds["deployed"]
    X, t, proba, state = _arrays(4)
    rep = audit(gate, proba, t.action, embedding=X, trajectories=t, alphas=(0.1, 0.2),
                subgroups=None)  # fmt: skip
    o = rep["overall"]
    assert o["promise"] == ">= 0" and o["interval"] == "paired bootstrap" and not o["flagged"]
    assert o["ci_low"] < o["value_realised"] < o["ci_high"]
    assert o["value_realised"] == pytest.approx(0.32, abs=0.07)
    assert rep["thresholds"]["deployed"] is True
    outcome = gate.rule.outcome(gate.decide(proba, embedding=X), t.action, embedding=X,
                                trajectories=t, within=state == 1)  # fmt: skip
    assert isinstance(outcome, PolicyEstimate) and 0 < outcome.value < o["value_realised"]


def test_options_are_checked():
    with pytest.raises(SaferError, match="no option"):
        SafePolicyImprovement(0.1, options={"states": 3})
    with pytest.raises(SaferError, match="unknown improvement algorithm"):
        SafePolicyImprovement(0.1, options={"algorithm": "dqn"})
    with pytest.raises(SaferError, match="select must be one of"):
        SafePolicyImprovement(0.1, options={"select": "best"})
    with pytest.raises(SaferError, match="kappa must be >= 0"):
        SafePolicyImprovement(0.1, options={"algorithm": "lcb", "kappa": -1})
    with pytest.raises(SaferError, match="now option select=bound"):
        SafePolicyImprovement(0.1, options={"n_wedge": "auto"})
    with pytest.raises(SaferError, match="needs trajectories_train"):
        calibrate_gate("spi", np.full((5, 25), 0.04), np.zeros(5, int), alpha=0.1,
                       model_hash="m", embedding_train=np.zeros((5, 2)),
                       embedding_cal=np.zeros((5, 2)))  # fmt: skip


def test_lac_quantile_and_sets_match_mapie():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.full(25, 0.3), size=600)
    y = np.array([rng.choice(25, p=p) for p in proba])
    for alpha in (0.05, 0.1, 0.3):
        mapie = PredictionSets("lac", alpha).conformalize(proba[:400], y[:400])
        q = lac_quantile(1.0 - proba[np.arange(400), y[:400]], alpha)
        assert q == pytest.approx(mapie.quantiles_["all"])
        np.testing.assert_array_equal(proba[400:] >= 1.0 - q - 1e-12,
                                      mapie.predict_set(proba[400:]))  # fmt: skip


def test_bound_selection_picks_the_best_predicted_bound_and_records_the_grid():
    gate = _gate(select="bound")
    t = gate.thresholds
    record = t["selection"]
    assert record["method"] == "bound" == t["select"] and record["folds"] == 3
    grid = record["grid"]
    assert len(grid) == len(GRID_WEDGE) * len(GRID_MARGIN)
    assert record["columns"] == ["n_wedge", "margin", "gain", "predicted_lower", "acting_states"]
    best = max((row for row in grid if row[3] is not None), key=lambda row: row[3])
    assert (
        [t["n_wedge"], t["margin"]]
        == best[:2]
        == [record["chosen"][k] for k in ("n_wedge", "margin")]
    )
    assert t["selection_predicted_lower"] == best[3]
    # the hand MDP's gain (+32 points) is large: some candidate is predicted to pass, and does
    assert best[3] > 0 and t["deployed"]
    # a margin above every state's estimated gain leaves nothing to deploy: never predicted
    ep = Episodes.from_decisions(*hand_stays(), n_states=2)
    _, _, none = select_knobs(ep, select="bound", n_cal_stays=400, delta=0.05, margins=(0.5,))
    assert all(row[3] is None and row[4] == 0 for row in none["grid"])
    assert none["chosen"]["predicted_lower"] is None


def test_gain_selection_picks_the_best_point_gain_and_fixed_records_no_grid():
    gain = _gate(select="gain").thresholds
    rows = [row for row in gain["selection"]["grid"] if row[3] is not None]
    assert gain["selection"]["chosen"]["gain"] == max(row[2] for row in rows)
    fixed = _gate().thresholds
    assert fixed["selection"] == {"method": "fixed"} and fixed["select"] == "fixed"
    assert (fixed["n_wedge"], fixed["margin"]) == (10, 0.0)


def test_the_selection_never_reads_the_safety_splits_outcomes():
    """Replacing the calibration stays' outcomes (harmful dose swapped in, then outcomes
    permuted across stays) changes the safety test, never the selection."""
    base = _gate(select="bound").thresholds
    harmful = _gate(harmful_cal=True, select="bound").thresholds
    assert harmful["selection"] == base["selection"]
    assert (harmful["n_wedge"], harmful["margin"]) == (base["n_wedge"], base["margin"])
    assert harmful["gain_lower"] != base["gain_lower"]  # the test itself did see the change
    X_tr, t_tr, _, _ = _arrays(1)
    X_cal, t_cal, p_cal, _ = _arrays(2)
    stays = np.unique(t_cal.stay)
    died_of = dict(zip(stays, np.random.default_rng(5).permutation(
        [t_cal.died[t_cal.stay == s][0] for s in stays]), strict=True))  # fmt: skip
    shuffled = Trajectories.of(t_cal.stay, t_cal.step, t_cal.action,
                               np.array([died_of[s] for s in t_cal.stay]))  # fmt: skip
    permuted = calibrate_gate(
        "spi", p_cal, t_cal.action, alpha=0.1, delta=0.05, model_hash="m",
        embedding_train=X_tr, embedding_cal=X_cal, trajectories_train=t_tr,
        trajectories_cal=shuffled,
        options={"n_states": 2, "n_boot": 200, "n_wedge": 10, "select": "bound"},
    ).thresholds  # fmt: skip
    assert permuted["selection"] == base["selection"]


def test_the_audit_shows_the_selection_grid():
    gate = _gate(select="bound")
    X, t, proba, _ = _arrays(4)
    rep = audit(gate, proba, t.action, embedding=X, trajectories=t, alphas=(0.1,), subgroups=None)
    assert (
        rep["selection"] == gate.thresholds["selection"] and rep["thresholds"]["select"] == "bound"
    )
    page = render_html(rep)
    assert "Candidate selection (bound, 3-fold on the training stays only)" in page
    assert (
        page.count('<tr class="chosen">')
        == len(
            [
                r
                for r in rep["selection"]["grid"]
                if r[:2] == [gate.thresholds["n_wedge"], gate.thresholds["margin"]]
            ]
        )
        == 1
    )
    fixed = audit(_gate(), proba, t.action, embedding=X, trajectories=t, alphas=(0.1,),
                  subgroups=None)  # fmt: skip
    assert fixed["selection"] is None and "Candidate selection" not in render_html(fixed)


def test_select_knobs_refuses_too_few_stays_and_an_unknown_rule():
    state, stay, step, action, died = hand_stays()
    ep = Episodes.from_decisions(state, stay, step, action, died, n_states=2)
    with pytest.raises(SaferError, match="by 'bound' or 'gain'"):
        select_knobs(ep, select="fixed", n_cal_stays=100, delta=0.05)
    with pytest.raises(SaferError, match="at least 6 training stays"):
        select_knobs(ep.subset(np.arange(4)), select="bound", n_cal_stays=100, delta=0.05)
