"""`safer db` and `safer audit-trail verify`: upgrade, add users, load, verify, stale schemas."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import sqlalchemy as sa
from typer.testing import CliRunner

from safer.cli import app
from safer.cohorts import write_cohort
from safer.store import connect
from safer.store.schema import Recommendation

runner = CliRunner()


def test_upgrade_add_user_verify_and_detect_tampering(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    stale = runner.invoke(app, ["audit-trail", "verify", "--db", url])
    assert stale.exit_code != 0 and "safer db upgrade" in str(stale.exception)
    assert runner.invoke(app, ["db", "upgrade", "--db", url]).exit_code == 0
    added = runner.invoke(
        app, ["db", "add-user", "ana", "--role", "clinician", "--db", url],
        input="ana-password\nana-password\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    ok = runner.invoke(app, ["audit-trail", "verify", "--db", url, "--json"])
    assert ok.exit_code == 0 and '"ok": true' in ok.stdout
    with connect(url)() as s, s.begin():
        s.execute(sa.text("UPDATE audit_events SET actor = 'mallory'"))
    broken = runner.invoke(app, ["audit-trail", "verify", "--db", url, "--json"])
    assert broken.exit_code == 1 and "altered" in broken.stdout


class _Model:
    """Stands in for a trained model: the documented load_model() contract, nothing more."""

    content_hash_ = "model-hash-1"
    split_seed_ = 3

    def predict_proba(self, cohort):
        rng = np.random.default_rng(0)
        return rng.dirichlet(np.full(25, 0.2), size=len(cohort))

    def embed(self, cohort):
        return np.zeros((len(cohort), 4))


class _Gate:
    alpha = 0.1
    calibration_hash = "cal-hash-1"

    def decide(self, proba, embedding):
        assert embedding.shape[0] == proba.shape[0]
        sets = proba >= 0.15
        action = np.where(sets.sum(1) == 1, proba.argmax(1), -1)
        reasons = ["" if a >= 0 else "prediction set is not a single action" for a in action]
        return types.SimpleNamespace(action=action, sets=sets, reasons=reasons)


def test_db_load_wires_model_and_gate_and_is_idempotent(tmp_path, small_cohort, monkeypatch):
    models = types.ModuleType("safer.models")
    models.load_model = lambda path: _Model()
    conformal = types.ModuleType("safer.conformal")
    conformal.load_gate = lambda path: _Gate()
    monkeypatch.setitem(sys.modules, "safer.models", models)
    monkeypatch.setitem(sys.modules, "safer.conformal", conformal)
    cohort = small_cohort[small_cohort["stay_id"].isin(small_cohort["stay_id"].unique()[:5])]
    cohort_file = tmp_path / "cohort.parquet"
    write_cohort(cohort, cohort_file)
    url = f"sqlite:///{tmp_path / 'load.db'}"
    runner.invoke(app, ["db", "upgrade", "--db", url])
    args = ["db", "load", "--cohort", str(cohort_file), "--model", str(tmp_path), "--gate",
            str(tmp_path / "gate.json"), "--db", url, "--json"]  # fmt: skip
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["recommendations"] == len(cohort)
    again = json.loads(runner.invoke(app, args).stdout)
    assert again == {"stays": 0, "steps": 0, "notes": 0, "recommendations": 0}
    with connect(url)() as s:
        recs = s.execute(sa.select(Recommendation)).scalars().all()
    assert {r.calibration_hash for r in recs} == {"cal-hash-1"}
    assert all(r.flagged and r.reason for r in recs if r.abstained)
