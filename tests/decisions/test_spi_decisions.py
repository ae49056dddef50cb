"""The safe gate through the decisions stage on a real (tiny) model and simulated cohort:
calibrate (trajectories and representations supplied from the rows), decide (also a rollout's
latest rows only), audit (policy-level promise), the gated policy in a rollout, adherence and
the realised check, and the CLI (`safer calibrate --method spi`, `safer audit`,
`safer mortality --policy gated:...`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from safer.cohorts import split_stays
from safer.conformal import load_gate
from safer.decisions import audit, calibrate, decide, trajectories
from safer.errors import SaferError
from safer.evaluation.adherence import adherence_table, realised_gain
from safer.evaluation.mortality import exact_mortality, rollout_mortality, true_mortality
from safer.evaluation.policies import GatedPolicy, PartialAdherence, clinician_policy
from safer.models import make_model

# small data: trust doses logged twice, few resamples
OPTIONS = {"n_wedge": 2, "n_boot": 40, "n_states": 8}


@pytest.fixture(scope="module")
def parts(small_cohort):
    splits = split_stays(small_cohort, seed=0)
    return tuple(splits.subset(small_cohort, s) for s in ("train", "calibration", "test"))


@pytest.fixture(scope="module")
def model(parts):
    return make_model("bc-mlp", use_notes=False, epochs=1, d_model=16).fit(parts[0], progress=False)


@pytest.fixture(scope="module")
def gate(parts, model):
    train, cal, _ = parts
    return calibrate(model, train, cal, method="spi", alpha=0.1, delta=0.2, options=OPTIONS)


def test_the_decisions_stage_supplies_representation_and_trajectories(parts, model, gate):
    assert gate.representation == "features"  # the method's default
    assert gate.needs_trajectories and gate.needs_embedding and gate.options["n_wedge"] == 2
    t = gate.thresholds
    assert t["n_states"] == 8 and t["n_calibration"] == len(parts[1])
    assert t["n_train_stays"] == parts[0]["stay_id"].nunique()
    d = decide(model, gate, parts[2])
    assert d.action.shape == (len(parts[2]),) and d.method == "spi"
    assert all(r.startswith(("Suggest", "Defer to usual care")) for r in d.reason)


def test_deciding_only_the_latest_rows_equals_deciding_all(parts, model, gate):
    test = parts[2].sort_values(["stay_id", "step"]).reset_index(drop=True)
    last = (test["stay_id"] != test["stay_id"].shift(-1)).to_numpy()
    full = decide(model, gate, test)
    only = decide(model, gate, test, current=last)
    np.testing.assert_array_equal(only.action, full.action[last])
    np.testing.assert_array_equal(only.reason, full.reason[last])


def test_the_audit_estimates_the_gain_on_test_stays(parts, model, gate):
    report = audit(model, gate, parts[2])
    o = report["overall"]
    assert o["promise"] == ">= 0" and o["interval"] == "paired bootstrap"
    assert o["n"] == parts[2]["stay_id"].nunique()
    assert {"age band", "SOFA band"} <= {r["column"] for r in report["subgroups"]}
    assert "usual care" in report["guarantee"] and report["options"]["n_states"] == 8


def test_the_features_representation_and_the_embedding_work_too(parts, model):
    train, cal, test = parts
    test = test.sort_values(["stay_id", "step"]).reset_index(drop=True)
    last = (test["stay_id"] != test["stay_id"].shift(-1)).to_numpy()
    for kind in ("features", "features+locf", "embedding"):
        g = calibrate(model, train, cal, method="spi", alpha=0.1, options=OPTIONS,
                      representation=kind)  # fmt: skip
        assert g.representation == kind
        full = decide(model, g, test)
        assert full.action.shape == (len(test),)
        # a rollout decides the latest rows with the stays' history beside them: same decisions
        np.testing.assert_array_equal(
            decide(model, g, test, current=last).reason, full.reason[last]
        )
    with pytest.raises(SaferError, match="unknown representation"):
        calibrate(model, train, cal, method="spi", representation="pixels", options=OPTIONS)


def test_trajectories_need_the_logged_outcome(parts):
    with pytest.raises(SaferError, match="needs cohort columns \\['died'\\]"):
        trajectories(parts[0].drop(columns="died"))


def test_gated_rollouts_adherence_and_the_realised_check(model, gate):
    gated = GatedPolicy(model, gate)
    r = rollout_mortality(gated, 30, seed=0, progress=False)
    assert r.observed and 0.0 <= r.abstention_rate <= 1.0
    half = rollout_mortality(PartialAdherence(gated, 0.5), 30, seed=0, progress=False)
    assert half.abstention_rate >= r.abstention_rate - 1e-9  # ignored advice counts as deferred
    table = adherence_table(model, gate, levels=(0.5,), episodes=20, seed=0)
    assert table["policy"].tolist()[0] == "clinicians (exact)" and len(table) == 4
    realised = realised_gain(model, gate, episodes=40, seed=0)
    o = realised["overall"]
    assert o["ci_low"] <= o["gain"] <= o["ci_high"] and "points" in realised["summary"]
    assert o["exact"] == gate.abstains_everywhere


def test_a_gate_that_certified_nothing_is_the_clinicians_policy_solved_exactly(parts, model):
    train, cal, _ = parts
    never = calibrate(model, train, cal, method="spi", alpha=0.1,
                      options={**OPTIONS, "n_wedge": 10**6})  # fmt: skip  # no dose trusted
    assert not never.thresholds["deployed"] and never.abstains_everywhere
    gated = GatedPolicy(model, never)
    assert gated.exact_equivalent() is gated.defer_to
    result = true_mortality(gated, 20, seed=0, progress=False)
    assert result.method == "exact" and result.ci_low == result.ci_high
    assert result.mortality == pytest.approx(exact_mortality(clinician_policy()))
    assert result.rollout.abstention_rate == 1.0
    # the realised check knows it too: usual care, gain exactly 0 -- never "broken" by the noise
    # of two independent rollouts (at 200 stays, seed 0, that noise read -10 points)
    realised = realised_gain(model, never, episodes=40, seed=0)
    o = realised["overall"]
    assert o["exact"] and o["gain"] == o["ci_low"] == o["ci_high"] == 0.0 and not o["broken"]
    assert o["gated_mortality"] == o["clinicians_mortality"] == result.mortality
    assert realised["subgroups"] and all(r["gain"] == 0.0 for r in realised["subgroups"])
    assert "exactly 0" in realised["summary"]


def _run(argv):
    from safer.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code in (0, None), argv


def test_cli_calibrate_audit_and_gated_mortality(tmp_path, small_cohort, capsys):
    from safer.cohorts import write_cohort

    cohort_file = tmp_path / "c.parquet"
    write_cohort(small_cohort, cohort_file)
    model_dir = tmp_path / "model"
    _run(["train", "--cohort", str(cohort_file), "--variant", "bc-mlp", "--out", str(model_dir)])
    capsys.readouterr()
    gate = tmp_path / "gate.json"
    _run(["calibrate", "--model", str(model_dir), "--cohort", str(cohort_file), "--method", "spi",
          "--delta", "0.05", "--option", "n_boot=40", "--option", "n_wedge=2",
          "--representation", "features", "--out", str(gate), "--json"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["method"] == "spi" and summary["delta"] == 0.05 and "deployed" in summary
    saved = load_gate(gate)
    assert saved.options["n_boot"] == 40 and saved.representation == "features"
    out = tmp_path / "spi.html"
    _run(["audit", "--model", str(model_dir), "--gate", str(gate), "--cohort", str(cohort_file),
          "--out", str(out), "--episodes", "20", "--json"])  # fmt: skip
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["method"] == "spi" and report["realised"]["overall"]["episodes"] == 20
    assert "Realised on the simulator" in out.read_text()
    capsys.readouterr()
    _run(["mortality", "--policy", f"gated:{model_dir}:{gate}", "--episodes", "20", "--json"])
    # a gate that certified nothing is the clinicians' policy: solved exactly, not sampled
    expected = "rollout" if saved.thresholds["deployed"] else "exact"
    assert json.loads(capsys.readouterr().out)["method"] == expected
    # select=bound: the knobs chosen on the training stays, the grid shown by the audit
    chosen = tmp_path / "bound.json"
    _run(["calibrate", "--model", str(model_dir), "--cohort", str(cohort_file), "--method", "spi",
          "--option", "n_boot=40", "--option", "select=bound", "--representation", "features",
          "--out", str(chosen)])  # fmt: skip
    record = load_gate(chosen).thresholds["selection"]
    assert record["method"] == "bound" and len(record["grid"]) == 20
    page = tmp_path / "bound_audit.html"  # not bound.html: its .json would be the gate file
    _run(["audit", "--model", str(model_dir), "--gate", str(chosen), "--cohort", str(cohort_file),
          "--out", str(page), "--json"])  # fmt: skip
    assert json.loads(page.with_suffix(".json").read_text())["selection"] == record
    assert "Candidate selection (bound, 3-fold on the training stays only)" in page.read_text()
