"""The decisions stage on small real models: calibrate, decide (model-checked), audit, and the
`safer calibrate` / `safer audit` commands that wire it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from safer.cohorts import split_stays
from safer.cohorts.splits import SplitLeakError
from safer.conformal import GateMismatchError, load_gate
from safer.decisions import (
    NO_GATE_REASON,
    audit,
    calibrate,
    calibrate_and_audit,
    decide,
    model_version,
    subgroup_frame,
)
from safer.errors import SaferError
from safer.models import make_model


@pytest.fixture(scope="module")
def parts(small_cohort):
    splits = split_stays(small_cohort, seed=0)
    return tuple(splits.subset(small_cohort, s) for s in ("train", "calibration", "test"))


@pytest.fixture(scope="module")
def models(parts):
    """Two tiny real models of different kinds: an entropy (BC-MLP) and a kappa (SAFER-n) one."""
    train = parts[0]
    mlp = make_model("bc-mlp", use_notes=False, epochs=2, d_model=16).fit(train, progress=False)
    safer_n = make_model(
        "safer-n", epochs=1, survivor_epochs=2, finetune_epochs=1, d_model=16, n_heads=2, history=4
    ).fit(train, progress=False)
    return {"bc-mlp": mlp, "safer-n": safer_n}


def test_calibration_on_stays_the_model_or_the_gate_learned_from_is_refused(parts, models):
    train, cal, _ = parts
    model = models["bc-mlp"]
    with pytest.raises(SplitLeakError, match="calibration stays were used to train"):
        calibrate(model, train, train, method="lac", alpha=0.2)
    mixed = pd.concat([cal, train[train["stay_id"] == train["stay_id"].iloc[0]]])
    with pytest.raises(SplitLeakError, match="1 calibration stays"):
        calibrate(model, train, mixed, method="lac", alpha=0.2)
    with pytest.raises(SplitLeakError, match="also in the training rows given"):
        calibrate(model, pd.concat([train, cal]), cal, method="lac", alpha=0.2)


@pytest.mark.parametrize(("name", "method"), [("bc-mlp", "lac"), ("safer-n", "selection")])
def test_calibrate_and_audit_writes_the_gate_with_its_report(tmp_path, parts, models, name, method):
    train, cal, test = parts
    model = models[name]
    gate, report = calibrate_and_audit(
        model, train, cal, test, method=method, alpha=0.2, gate_path=tmp_path / "gate.json",
        report_path=tmp_path / "r.html",
    )  # fmt: skip
    saved = load_gate(tmp_path / "gate.json", model_hash=model.content_hash_)
    assert saved.report_path == str((tmp_path / "r.html").resolve())
    assert json.loads((tmp_path / "r.json").read_text())["n_test"] == len(test)
    assert {"age band", "gender", "SOFA band", "mechanical ventilation"} <= {
        r["column"] for r in report["subgroups"]
    }
    assert "data:image/png;base64," in (tmp_path / "r.html").read_text()
    if method == "selection":  # the gate records which uncertainty its c is a cut-off of
        assert saved.uncertainty == model.uncertainty_kind == "kappa"


def test_decide_checks_the_model_and_computes_what_the_method_needs(parts, models):
    train, cal, test = parts
    mlp, safer_n = models["bc-mlp"], models["safer-n"]
    gate = calibrate(safer_n, train, cal, method="selection", alpha=0.2)
    d = decide(safer_n, gate, test)
    direct = gate.decide(safer_n.predict_proba(test), embedding=safer_n.embed(test))
    np.testing.assert_array_equal(d.action, direct.action)
    with pytest.raises(GateMismatchError, match="never transfers between models"):
        decide(mlp, gate, test)
    with pytest.raises(GateMismatchError):
        audit(mlp, gate, test)


def test_decide_without_a_gate_recommends_the_most_likely_dose(parts, models):
    test = parts[2]
    model = models["bc-mlp"]
    d = decide(model, None, test)
    np.testing.assert_array_equal(d.action, model.predict_proba(test).argmax(axis=1))
    assert d.sets is None and d.alpha is None and d.method == "none"
    assert set(d.reason) == {NO_GATE_REASON} and d.model_hash == model.content_hash_
    assert model_version(model).startswith("BCMLPRecommender (safer ")


def test_mondrian_groups_come_from_the_gate_column(parts, models):
    train, cal, test = (p.assign(ward=np.where(p["stay_id"] % 2, "east", "west")) for p in parts)
    model = models["bc-mlp"]
    gate = calibrate(model, train, cal, method="lac", alpha=0.3, groups_column="ward")
    assert decide(model, gate, test).sets.shape == (len(test), 25)
    with pytest.raises(SaferError, match="'ward' is not in the cohort"):
        decide(model, gate, test.drop(columns=["ward"]))


SPI = {"method": "spi", "delta": 0.3, "options": {"n_wedge": 2, "n_boot": 40, "n_states": 8}}


@pytest.mark.parametrize(
    ("name", "gate_kw"),
    [
        ("bc-mlp", {"method": "lac", "alpha": 0.2}),
        ("bc-mlp", {"method": "aps", "alpha": 0.2}),
        ("safer-n", {"method": "ltt", "alpha": 0.3, "delta": 0.2}),
        ("bc-mlp", SPI),
        ("bc-mlp", {**SPI, "representation": "features+notes"}),
        ("safer-n", {**SPI, "representation": "features+notes+locf"}),
        ("safer-n", {**SPI, "representation": "embedding"}),
    ],
)
def test_one_decision_at_a_time_equals_the_same_row_decided_in_a_batch(parts, models, name,
                                                                        gate_kw):  # fmt: skip
    """What a rollout or the console does -- a stay's rows up to a step, only the latest one
    decided -- gives that row's decision on the whole test split, with or without the hidden
    columns and whatever the column order. (Not the selection gate: its Benjamini-Hochberg step
    depends on the batch of decisions by design.)"""
    train, cal, test = parts
    model = models[name]
    gate = calibrate(model, train, cal, **gate_kw)
    test = test.sort_values(["stay_id", "step"]).reset_index(drop=True)
    full = decide(model, gate, test)
    assert any(c.startswith("true_") for c in test.columns)
    shuffled = list(np.random.default_rng(0).permutation(test.columns))
    for i in np.random.default_rng(1).choice(len(test), size=8, replace=False):
        rows = test[(test["stay_id"] == test.at[i, "stay_id"]) & (test.index <= i)]
        current = rows.index.to_numpy() == i
        for frame in (rows, rows[shuffled], rows.drop(columns=["true_state", "true_sofa"])):
            one = decide(model, gate, frame, current=current)
            assert one.action.tolist() == [full.action[i]] and one.reason[0] == full.reason[i]
            np.testing.assert_array_equal(one.sets[0], full.sets[i])
            np.testing.assert_allclose(one.score[0], full.score[i], rtol=0, atol=1e-6)


def test_subgroup_frame_unknown_column(small_cohort):
    with pytest.raises(SaferError, match="not in the cohort"):
        subgroup_frame(small_cohort, ["no_such_column"])


def test_audit_lists_bands_in_reading_order(parts, models):
    """Age and SOFA bands come youngest / least sick first, not in string order ('<40' last)."""
    train, cal, test = parts
    test = test.assign(age=np.resize([85.0, 30.0, 50.0, 70.0, np.nan], len(test)))
    test = test.assign(SOFA=np.resize([12, 2, 7], len(test)))
    model = models["bc-mlp"]
    gate = calibrate(model, train, cal, method="lac", alpha=0.3)
    rows = audit(model, gate, test)["subgroups"]
    ages = [r["value"] for r in rows if r["column"] == "age band"]
    assert ages == ["<40", "40-59", "60-79", "80+", "unknown"]
    assert [r["value"] for r in rows if r["column"] == "SOFA band"] == ["0-5", "6-10", "11+"]


def _run(argv):
    from safer.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code in (0, None), argv


def test_cli_calibrate_and_audit(tmp_path, small_cohort):
    from safer.cohorts import write_cohort

    cohort_file = tmp_path / "c.parquet"
    write_cohort(small_cohort, cohort_file)
    model_dir = tmp_path / "model"
    _run(["train", "--cohort", str(cohort_file), "--variant", "safer", "--out", str(model_dir)])
    for method in ("lac", "ltt", "selection"):
        gate = tmp_path / f"{method}.json"
        _run(["calibrate", "--model", str(model_dir), "--cohort", str(cohort_file), "--method",
              method, "--alpha", "0.2", "--out", str(gate)])  # fmt: skip
        out = tmp_path / f"{method}-audit.html"
        _run(["audit", "--model", str(model_dir), "--gate", str(gate), "--cohort",
              str(cohort_file), "--out", str(out), "--json"])  # fmt: skip
        report = json.loads(out.with_suffix(".json").read_text())
        assert report["method"] == method and "overall" in report  # the report, not the gate
        assert json.loads(gate.read_text())["report_path"] == str(out.resolve())
    # a report named after its gate would write its JSON over the gate: refused, nothing touched
    before = gate.read_bytes()
    from safer.cli import main

    with pytest.raises(SystemExit) as info:
        main(["audit", "--model", str(model_dir), "--gate", str(gate), "--cohort",
              str(cohort_file), "--out", str(gate.with_suffix(".html"))])  # fmt: skip
    assert info.value.code == 2
    assert gate.read_bytes() == before and not gate.with_suffix(".html").exists()


def test_a_report_never_overwrites_the_gate_or_the_model(tmp_path, parts, models):
    from safer.decisions import report_paths

    train, cal, test = parts
    gate_path = tmp_path / "gate.json"
    with pytest.raises(SaferError, match="would overwrite"):
        calibrate_and_audit(models["bc-mlp"], train, cal, test, gate_path=gate_path,
                            report_path=tmp_path / "gate.html")  # fmt: skip
    assert not gate_path.exists()  # refused before any work or write
    with pytest.raises(SaferError, match="would overwrite"):
        report_paths(tmp_path / "model" / "r.html", keep=[tmp_path / "model"])
    with pytest.raises(SaferError, match="both be"):
        report_paths(tmp_path / "r.json")
