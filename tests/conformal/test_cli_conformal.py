"""The CLI wiring: calibrate_and_report on a stand-in model, and the commands once models land."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from safer.cli.conformal import calibrate_and_report, subgroup_frame
from safer.cohorts import split_stays


class _StandIn:
    """Model-interface stand-in: logistic regression on four vitals (the layer is agnostic)."""

    content_hash_ = "standin-1"
    cols = ["SOFA", "MeanBP", "HR", "Arterial_lactate"]

    def __init__(self, train):
        X = train[self.cols].fillna(0).to_numpy()
        self.clf = LogisticRegression(max_iter=200).fit(X, train["action"])

    def predict_proba(self, rows):
        p = np.zeros((len(rows), 25))
        p[:, self.clf.classes_] = self.clf.predict_proba(rows[self.cols].fillna(0).to_numpy())
        return p

    def embed(self, rows):
        return rows[self.cols].fillna(0).to_numpy()

    def uncertainty(self, rows):
        return 1.0 - self.predict_proba(rows)[np.arange(len(rows)), rows["action"].to_numpy()]


@pytest.mark.parametrize("method", ["lac", "selection"])
def test_calibrate_and_report_writes_gate_html_json(tmp_path, small_cohort, method):
    splits = split_stays(small_cohort, seed=0)
    train, cal, test = (splits.subset(small_cohort, s) for s in ("train", "calibration", "test"))
    model = _StandIn(train)
    gate, report = calibrate_and_report(
        model,
        train,
        cal,
        test,
        method=method,
        alpha=0.2,
        gate_path=tmp_path / "gate.json",
        report_path=tmp_path / "r.html",
        json_path=tmp_path / "r.json",
    )
    assert json.loads((tmp_path / "gate.json").read_text())["model_hash"] == "standin-1"
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["n_test"] == len(test)
    assert {"age band", "gender", "SOFA band", "mechanical ventilation"} <= {
        r["column"] for r in saved["subgroups"]
    }
    assert "data:image/png;base64," in (tmp_path / "r.html").read_text()


def test_subgroup_frame_unknown_column(small_cohort):
    with pytest.raises(Exception, match="not in the cohort"):
        subgroup_frame(small_cohort, ["no_such_column"])


def _run(argv):
    from safer.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code in (0, None), argv


def test_cli_calibrate_and_audit(tmp_path, small_cohort):
    pytest.importorskip("safer.models")
    from safer.cohorts import write_cohort

    cohort_file = tmp_path / "c.parquet"
    write_cohort(small_cohort, cohort_file)
    model_dir = tmp_path / "model"
    _run(["train", "--cohort", str(cohort_file), "--variant", "safer", "--out", str(model_dir)])
    for method in ("lac", "ltt", "selection"):
        gate = tmp_path / f"{method}.json"
        _run(
            [
                "calibrate",
                "--model",
                str(model_dir),
                "--cohort",
                str(cohort_file),
                "--method",
                method,
                "--alpha",
                "0.2",
                "--out",
                str(gate),
            ]
        )
        out = tmp_path / f"{method}.html"
        _run(
            [
                "audit",
                "--model",
                str(model_dir),
                "--gate",
                str(gate),
                "--cohort",
                str(cohort_file),
                "--out",
                str(out),
                "--json",
            ]
        )
        assert json.loads(out.with_suffix(".json").read_text())["method"] == method
