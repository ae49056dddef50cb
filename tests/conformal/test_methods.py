"""Gate methods as plug-ins: the registry, a method from outside, old gate files, provenance."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from safer._registry import Registry, UnknownNameError
from safer.conformal import METHODS, CalibrationTooSmallError, calibrate_gate, load_gate
from safer.conformal.methods import (
    ABSTAIN,
    GateMethod,
    MethodState,
    Outcome,
    Promise,
    Verdict,
    keep_labelled,
)
from safer.conformal.report import GUARANTEES, audit, to_json
from safer.errors import SaferError
from tests.conformal._synth import synth_decisions

DATA = Path(__file__).parent / "data"


class TopK(GateMethod):
    """Top-k sets: the k most probable actions, k set by split conformal on the rank of the
    clinicians' action (the "naive" sets of Angelopoulos et al., ICLR 2021). Recommends only
    when k = 1."""

    name = "topk"
    guarantee = (
        "Promises: the k most probable actions contain the clinicians' action with probability "
        "at least 1 - alpha, on average over decisions."
    )

    def _conformalize(self, data):
        ranks = _ranks(data.proba)[np.arange(len(data.y)), data.y]  # 1 = most probable
        n = len(ranks)
        level = math.ceil((n + 1) * (1 - self.alpha))
        if level > n:
            raise CalibrationTooSmallError(f"top-k needs more than {n} decisions at this alpha")
        calibration, digest = keep_labelled(data)
        k = int(np.sort(ranks)[level - 1])
        return MethodState({"k": k, "n_calibration": n}, calibration, digest)

    def _decide(self, proba, *, embedding, groups):
        k = self.state_.thresholds["k"]
        sets = _ranks(proba) <= k
        action = np.where(sets.sum(axis=1) == 1, proba.argmax(axis=1), ABSTAIN)
        reason = np.where(action >= 0, "the most probable action", f"abstain: top-{k} set")
        return Verdict(action, sets, reason, np.full(len(proba), float(k)))

    def promise(self):
        return Promise(self.guarantee, target=1.0 - self.alpha, direction="at_least")

    def outcome(self, decisions, y, kappa=None):
        return Outcome(decisions.sets[np.arange(len(y)), y], np.ones(len(y), bool), "coverage")


def _ranks(proba):
    order = np.argsort(-proba, axis=1, kind="stable")
    return np.argsort(order, axis=1) + 1


WITH_TOPK = Registry("gate method", {**METHODS, "topk": TopK})


@pytest.fixture(scope="module")
def data():
    return synth_decisions(1500, seed=21)


def _selection(data, **kw):
    proba, y, Z, kappa = data
    return calibrate_gate(
        "selection",
        proba[500:1000],
        y[500:1000],
        alpha=0.2,
        model_hash="m",
        embedding_train=Z[:500],
        kappa_train=kappa[:500],
        embedding_cal=Z[500:1000],
        kappa_cal=kappa[500:1000],
        **kw,
    )


def test_registry_order_and_names():
    assert list(METHODS) == ["selection", "lac", "aps", "raps", "ltt", "spi"]
    assert all(cls.name == name for name, cls in METHODS.items())
    assert list(GUARANTEES) == list(METHODS)


def test_unknown_method_lists_the_known_ones(data):
    proba, y, _, _ = data
    with pytest.raises(UnknownNameError, match="known: selection, lac, aps, raps, ltt, spi"):
        calibrate_gate("topk", proba[:100], y[:100], alpha=0.2, model_hash="m")


def test_a_method_from_outside_is_one_class_end_to_end(tmp_path, data):
    proba, y, _, _ = data
    gate = calibrate_gate(
        "topk", proba[:500], y[:500], alpha=0.2, model_hash="m", methods=WITH_TOPK
    )
    k = gate.thresholds["k"]
    rank_of_y = _ranks(proba[:500])[np.arange(500), y[:500]]
    assert (rank_of_y <= k).mean() >= 0.8 > (rank_of_y <= k - 1).mean()  # smallest valid k
    d = gate.decide(proba[500:], model_hash="m")
    assert (d.sets.sum(axis=1) == k).all() and d.method == "topk"

    rep = audit(gate, proba[500:], y[500:], alphas=(0.2, 0.5))
    assert rep["guarantee"] == TopK.guarantee and rep["overall"]["promise"] == ">= 0.8"
    covered = (_ranks(proba[500:])[np.arange(1000), y[500:]] <= k).mean()
    assert rep["overall"]["value_realised"] == pytest.approx(covered)
    assert [t["alpha"] for t in rep["tradeoff"]] == [0.2, 0.5]
    assert rep["tradeoff_targets"] == pytest.approx([0.8, 0.5])
    json.loads(to_json(rep))

    path = gate.with_report(tmp_path / "topk.html").save(tmp_path / "topk.json")
    with pytest.raises(UnknownNameError, match="known: selection, lac, aps, raps, ltt, spi"):
        load_gate(path)
    loaded = load_gate(path, model_hash="m", methods=WITH_TOPK)
    np.testing.assert_array_equal(loaded.decide(proba[500:]).sets, d.sets)
    assert loaded.report_path == str(tmp_path / "topk.html")
    assert loaded.recalibrate(0.5).thresholds["k"] <= k


def test_the_report_quotes_the_methods_promise(data):
    proba, y, Z, kappa = data
    gate = _selection(data, uncertainty_kind="entropy")
    rep = audit(gate, proba[1000:], y[1000:], kappa=kappa[1000:], embedding=Z[1000:])
    assert rep["guarantee"] == gate.rule.promise().statement
    assert "predictive entropy" in rep["guarantee"] and "kappa" not in rep["guarantee"]
    assert rep["overall"]["metric"] == "false discovery rate (true entropy >= c)"
    assert rep["uncertainty"] == "entropy"
    for method in ("lac", "ltt"):
        g = calibrate_gate(method, proba[:500], y[:500], alpha=0.2, model_hash="m")
        assert audit(g, proba[1000:], y[1000:], alphas=())["guarantee"] == GUARANTEES[method]


def test_uncertainty_and_report_path_round_trip(tmp_path, data):
    gate = _selection(data, uncertainty_kind="kappa")
    assert gate.uncertainty == "kappa" and gate.report_path is None
    assert gate.needs_embedding and gate.needs_kappa and not gate.needs_labels
    path = gate.with_report(tmp_path / "audit.html").save(tmp_path / "gate.json")
    raw = json.loads(path.read_text())
    assert raw["format"] == "safer-gate/2" and raw["uncertainty"] == "kappa"
    loaded = load_gate(path)
    assert loaded.uncertainty == "kappa" and loaded.report_path == str(tmp_path / "audit.html")
    proba, _, Z, _ = data
    np.testing.assert_array_equal(
        loaded.decide(proba[1000:], embedding=Z[1000:]).action,
        gate.decide(proba[1000:], embedding=Z[1000:]).action,
    )


def test_uncertainty_kind_is_checked_and_only_kept_where_kappa_is_read(data):
    proba, y, _, _ = data
    with pytest.raises(SaferError, match="known: kappa, entropy"):
        _selection(data, uncertainty_kind="variance")
    lac = calibrate_gate(
        "lac", proba[:500], y[:500], alpha=0.2, model_hash="m", uncertainty_kind="kappa"
    )
    assert lac.uncertainty is None and not lac.needs_embedding and lac.supports_groups


def test_groups_are_refused_by_methods_without_them(data):
    proba, y, _, _ = data
    groups = np.where(np.arange(500) % 2 == 0, "a", "b")
    with pytest.raises(SaferError, match="apply to methods lac, aps, raps, not 'ltt'"):
        calibrate_gate("ltt", proba[:500], y[:500], alpha=0.2, model_hash="m", groups_cal=groups)


def _v1_arrays():
    """The arrays the fixture gates in data/ were calibrated on by safer before gate methods
    were plug-ins (commit 25fd71a, format safer-gate/1)."""

    def peaked(n, offset):
        levels = [(0.52, 0.02), (0.76, 0.01), (0.28, 0.03)]
        P = np.zeros((n, 25))
        for i in range(n):
            hi, lo = levels[(i + offset) % 3]
            P[i] = lo
            P[i, (7 * i + offset) % 25] = hi
        return P

    Z = np.array([[i % 3, (i * 5) % 7, 1.0] for i in range(40)], dtype=float)
    return peaked(12, 1), Z[:12]


# What the previous version decided with each fixture gate on _v1_arrays().
V1_ACTIONS = {
    "lac": [1, -1, 15, 22, -1, 11, 18, -1, 7, 14, -1, 3],
    "ltt": [-1] * 12,
    "selection": [1, -1, -1, 22, -1, -1, 18, 0, -1, 14, 21, -1],
}
V1_SET_SIZES = {"lac": [1, 25, 1, 1, 25, 1, 1, 25, 1, 1, 25, 1]}
V1_SELECTION_PVALUES = np.array([1, 5, 4, 1, 7, 6, 1, 1, 8, 1, 1, 9]) / 21


@pytest.mark.parametrize("method", ["lac", "ltt", "selection"])
def test_a_gate_file_of_the_previous_format_loads_and_decides_as_before(method):
    path = DATA / f"gate_v1_{method}.json"
    assert json.loads(path.read_text())["format"] == "safer-gate/1"
    gate = load_gate(path, model_hash="model-v1")
    assert gate.uncertainty is None and gate.report_path is None
    proba, Z = _v1_arrays()
    d = gate.decide(proba, embedding=Z if gate.needs_embedding else None)
    assert d.action.tolist() == V1_ACTIONS[method]
    if method == "lac":
        assert d.sets.sum(axis=1).tolist() == V1_SET_SIZES["lac"]
    if method == "ltt":
        assert gate.thresholds["lambda"] == float("inf")  # saved as null
        assert d.reason[0] == "abstain: top probability below threshold inf (no valid threshold)"
    if method == "selection":
        np.testing.assert_allclose(d.score, V1_SELECTION_PVALUES, rtol=0, atol=1e-15)
        assert gate.c == 0.3


def test_a_gate_file_with_an_unknown_method_says_so(tmp_path):
    raw = json.loads((DATA / "gate_v1_lac.json").read_text())
    path = tmp_path / "g.json"
    path.write_text(json.dumps({**raw, "method": "conformal-bayes"}))
    with pytest.raises(UnknownNameError, match="known: selection, lac"):
        load_gate(path)


def test_subgroup_rows_use_the_methods_outcome(data):
    proba, y, _, _ = data
    gate = calibrate_gate("ltt", proba[:700], y[:700], alpha=0.4, delta=0.1, model_hash="m")
    groups = pd.DataFrame({"half": np.where(np.arange(800) < 400, "first", "second")})
    rep = audit(gate, proba[700:], y[700:], subgroups=groups, alphas=())
    d = gate.decide(proba[700:])
    first = d.recommended & (np.arange(800) < 400)
    row = next(r for r in rep["subgroups"] if r["value"] == "first")
    assert row["n"] == int(first.sum())
    assert row["value_realised"] == pytest.approx((d.action[first] != y[700:][first]).mean())
