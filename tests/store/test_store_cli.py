"""`safer db` and `safer audit-trail verify`: upgrade, add users, load, verify, stale schemas."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from safer.cli import app
from safer.cohorts import write_cohort
from safer.store import connect
from safer.store.schema import Gate, Recommendation, Stay

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


@pytest.fixture(scope="module")
def real_model_and_gates(small_cohort, tmp_path_factory):
    """A tiny real model (BC-MLP, no notes) saved to disk, its LAC gate (with an audit report) and
    a second model's gate: what `safer train`, `safer calibrate` and `safer audit` write."""
    from safer.cohorts import split_stays
    from safer.decisions import calibrate_and_audit
    from safer.models import make_model

    out = tmp_path_factory.mktemp("db-load")
    splits = split_stays(small_cohort, seed=0)
    train, cal, test = (splits.subset(small_cohort, s) for s in ("train", "calibration", "test"))
    gates = {}
    for seed in (0, 1):
        model = make_model("bc-mlp", seed=seed, use_notes=False, epochs=2, d_model=16)
        model.fit(train, progress=False, split_seed=0).save(out / f"model{seed}")
        gates[seed], _ = calibrate_and_audit(
            model, train, cal, test, method="lac", alpha=0.2, gate_path=out / f"gate{seed}.json",
            report_path=out / f"report{seed}.html",
        )  # fmt: skip
    return out, test


def _load_args(cohort_file, folder, url, gate="gate0.json"):
    return ["db", "load", "--cohort", str(cohort_file), "--model", str(folder / "model0"),
            "--gate", str(folder / gate), "--db", url, "--json"]  # fmt: skip


def test_db_load_with_a_real_model_and_gate_is_idempotent(tmp_path, real_model_and_gates):
    folder, test = real_model_and_gates
    stays = test["stay_id"].unique()[:5]
    cohort = test[test["stay_id"].isin(stays)]
    cohort_file = write_cohort(cohort, tmp_path / "cohort.parquet")
    url = f"sqlite:///{tmp_path / 'load.db'}"
    assert runner.invoke(app, ["db", "upgrade", "--db", url]).exit_code == 0
    first = runner.invoke(app, _load_args(cohort_file, folder, url))
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["recommendations"] == len(cohort)
    again = json.loads(runner.invoke(app, _load_args(cohort_file, folder, url)).stdout)
    assert again == {"stays": 0, "steps": 0, "notes": 0, "recommendations": 0}
    gate = json.loads((folder / "gate0.json").read_text())
    with connect(url)() as s:
        recs = s.execute(sa.select(Recommendation)).scalars().all()
        stored_gate = s.execute(sa.select(Gate)).scalar_one()
    assert {r.calibration_hash for r in recs} == {gate["calibration_hash"]}
    assert {r.model_hash for r in recs} == {gate["model_hash"]}
    assert all(r.flagged and r.reason for r in recs if r.abstained)
    assert stored_gate.method == "lac" and stored_gate.alpha == 0.2
    assert stored_gate.report_path == str((folder / "report0.html").resolve())


def test_db_load_refuses_another_models_gate_and_writes_nothing(tmp_path, real_model_and_gates):
    folder, test = real_model_and_gates
    cohort_file = write_cohort(test, tmp_path / "cohort.parquet")
    url = f"sqlite:///{tmp_path / 'load.db'}"
    assert runner.invoke(app, ["db", "upgrade", "--db", url]).exit_code == 0
    refused = runner.invoke(app, _load_args(cohort_file, folder, url, gate="gate1.json"))
    assert refused.exit_code != 0
    assert "never transfers between models" in str(refused.exception)
    with connect(url)() as s:
        assert s.scalar(sa.select(sa.func.count(Stay.stay_id))) == 0
        assert s.scalar(sa.select(sa.func.count(Recommendation.id))) == 0
