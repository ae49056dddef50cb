"""Gate save/load/decide, model-hash check, and the auditor's report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from safer.conformal import GateMismatchError, PredictionSets, calibrate_gate, load_gate
from safer.conformal.report import audit, clopper_pearson, write_report
from safer.errors import SaferError
from tests.conformal._synth import synth_decisions


@pytest.fixture(scope="module")
def data():
    return synth_decisions(1500, seed=9)


def _gate(method, data, **kw):
    proba, y, Z, kappa = data
    return calibrate_gate(
        method,
        proba[500:1000],
        y[500:1000],
        alpha=kw.pop("alpha", 0.2),
        model_hash="model-A",
        embedding_train=Z[:500],
        kappa_train=kappa[:500],
        embedding_cal=Z[500:1000],
        kappa_cal=kappa[500:1000],
        **kw,
    )


@pytest.mark.parametrize("method", ["lac", "aps", "raps", "ltt", "selection"])
def test_saved_gate_decides_identically(tmp_path, data, method):
    proba, _, Z, _ = data
    gate = _gate(method, data, delta=0.1 if method == "ltt" else None)
    before = gate.decide(proba[1000:], embedding=Z[1000:])
    loaded = load_gate(gate.save(tmp_path / "gate.json"), model_hash="model-A")
    after = loaded.decide(proba[1000:], embedding=Z[1000:], model_hash="model-A")
    np.testing.assert_array_equal(before.action, after.action)
    np.testing.assert_array_equal(before.sets, after.sets)
    assert after.calibration_hash == gate.calibration_hash and after.model_hash == "model-A"
    frame = after.to_frame()
    assert len(frame) == 500 and set(frame["recommended"]) <= {True, False}
    assert (frame.loc[~frame["recommended"], "reason"].str.startswith("abstain")).all()


def test_gate_sets_are_mapie_sets_and_singletons_recommend(data):
    proba, y, _, _ = data
    gate = _gate("aps", data)
    ref = PredictionSets("aps", 0.2).conformalize(proba[500:1000], y[500:1000])
    d = gate.decide(proba[1000:])
    np.testing.assert_array_equal(d.sets, ref.predict_set(proba[1000:]))
    single = d.sets.sum(axis=1) == 1
    assert (d.action[single] == d.sets[single].argmax(axis=1)).all()
    assert (d.action[~single] == -1).all()


def test_gate_from_another_model_is_refused(tmp_path, data):
    path = _gate("lac", data).save(tmp_path / "g.json")
    with pytest.raises(GateMismatchError, match="re-run `safer calibrate`"):
        load_gate(path, model_hash="model-B")
    with pytest.raises(GateMismatchError):
        load_gate(path).decide(data[0][:3], model_hash="model-B")


def test_not_a_gate_file(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    with pytest.raises(SaferError, match="not a SAFER gate"):
        load_gate(bad)
    with pytest.raises(SaferError, match="not found"):
        load_gate(tmp_path / "missing.json")


def test_calibration_hash_tracks_the_data(data):
    proba, y, _, _ = data
    a = calibrate_gate("lac", proba[:400], y[:400], alpha=0.2, model_hash="m")
    b = calibrate_gate("lac", proba[1:401], y[1:401], alpha=0.2, model_hash="m")
    assert a.calibration_hash != b.calibration_hash


def test_clopper_pearson_contains_the_estimate_and_is_exact():
    lo, hi = clopper_pearson(0, 20)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 20))
    lo, hi = clopper_pearson(45, 50)
    assert lo < 0.9 < hi


def test_report_flags_a_subgroup_below_target(tmp_path, data):
    proba, y, _, _ = data
    gate = _gate("lac", data, alpha=0.1)
    test_p, test_y = proba[1000:].copy(), y[1000:].copy()
    # corrupt one subgroup: its clinicians' actions become the model's least likely action
    broken = np.arange(500) < 120
    test_y[broken] = test_p[broken].argmin(axis=1)
    groups = pd.DataFrame({"site": np.where(broken, "B", "A")})
    rep = audit(gate, test_p, test_y, subgroups=groups, alphas=(0.1, 0.2))
    by_site = {r["value"]: r for r in rep["subgroups"]}
    assert by_site["B"]["flagged"] and by_site["B"]["value_realised"] < 0.5
    assert not by_site["A"]["flagged"]
    html_path = write_report(rep, tmp_path / "r.html", tmp_path / "r.json")
    text = html_path.read_text()
    assert "BELOW TARGET" in text and "data:image/png;base64," in text
    assert gate.model_hash in text and gate.calibration_hash in text
    assert json.loads((tmp_path / "r.json").read_text())["n_flagged_subgroups"] == 1


def test_selection_report_uses_true_kappa(data):
    proba, y, Z, kappa = data
    gate = _gate("selection", data)
    with pytest.raises(SaferError, match="TRUE uncertainty"):
        audit(gate, proba[1000:], y[1000:], embedding=Z[1000:])
    rep = audit(gate, proba[1000:], y[1000:], kappa=kappa[1000:], embedding=Z[1000:])
    chosen = gate.decide(proba[1000:], embedding=Z[1000:]).recommended
    expected = (kappa[1000:][chosen] >= gate.c).mean()
    assert rep["overall"]["value_realised"] == pytest.approx(expected)
