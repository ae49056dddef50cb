"""`safer cohort mimic`, `safer cohort meds` and `safer mortality` on a real cohort: outputs,
one clear error with exit 2 and nothing half-written on bad input."""

from __future__ import annotations

import json

import pytest

from safer.cli import main
from safer.cohorts import read_cohort, simulate_cohort, write_cohort
from tests.cohorts.demo_data import DEMO, needs_demo
from tests.cohorts.mimic_fixture import write_fixture


def run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def outputs(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if p.is_file())


@pytest.fixture(scope="module")
def iv_folder(tmp_path_factory):
    return write_fixture("iv", tmp_path_factory.mktemp("mimic") / "iv")


def test_cohort_mimic_writes_cohort_summary_and_table_one(tmp_path, capsys, iv_folder):
    out = tmp_path / "cohort.parquet"
    code, stdout, _ = run(capsys, "cohort", "mimic", "--source", str(iv_folder), "--version",
                          "iv", "--out", str(out), "--json")  # fmt: skip
    assert code in (0, None)
    summary = json.loads(stdout)
    assert summary["stays"] == 2 and summary["funnel"]["cohort_stays"] == 2
    assert outputs(tmp_path) == ["cohort.parquet", "cohort.summary.json", "cohort.tableone.csv"]
    assert read_cohort(out).stay_id.nunique() == 2
    assert json.loads((tmp_path / "cohort.summary.json").read_text())["stays"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--version", "iii"], "looks like MIMIC-IV"),
        (["--version", "v"], "unknown MIMIC version"),
        (["--vasopressor-formula", "mine"], "unknown vasopressor formula"),
        (["--mortality", "30d"], "mortality must be"),
    ],
)
def test_cohort_mimic_bad_options_exit_2_writing_nothing(tmp_path, capsys, iv_folder, args,
                                                          message):  # fmt: skip
    base = ["cohort", "mimic", "--source", str(iv_folder), "--out", str(tmp_path / "c.parquet")]
    if "--version" not in args:
        base += ["--version", "iv"]
    code, _, err = run(capsys, *base, *args)
    assert code == 2
    assert message in " ".join(err.split()) and "Traceback" not in err
    assert outputs(tmp_path) == []


def test_cohort_mimic_missing_table_and_not_mimic(tmp_path, capsys):
    root = write_fixture("iv", tmp_path / "iv")
    (root / "hosp" / "prescriptions.csv.gz").unlink()
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run(capsys, "cohort", "mimic", "--source", str(root), "--version", "iv",
                       "--out", str(out / "c.parquet"))  # fmt: skip
    assert code == 2 and "hosp/prescriptions" in err and "antibiotics" in err
    code, _, err = run(capsys, "cohort", "mimic", "--source", str(out), "--version", "iv",
                       "--out", str(out / "c.parquet"))  # fmt: skip
    assert code == 2 and "not a MIMIC folder" in " ".join(err.split())
    assert outputs(out) == []


def test_cohort_mimic_wrong_password_exit_2(tmp_path, capsys):
    url = "postgresql+psycopg2://mimic:wrong-password@127.0.0.1:1/mimiciv"
    code, _, err = run(capsys, "cohort", "mimic", "--source", url, "--version", "iv", "--out",
                       str(tmp_path / "c.parquet"))  # fmt: skip
    assert code == 2 and "cannot connect" in err and "wrong-password" not in err
    assert outputs(tmp_path) == []


def test_cohort_meds_wrong_schema_exit_2(tmp_path, capsys):
    import pandas as pd

    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "events.parquet")
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run(capsys, "cohort", "meds", "--data", str(tmp_path), "--out",
                       str(out / "c.parquet"))  # fmt: skip
    assert code == 2 and "not a MEDS event table" in " ".join(err.split())
    assert outputs(out) == []


@needs_demo
def test_cohort_meds_on_the_demo(tmp_path, capsys):
    out = tmp_path / "demo.csv"
    code, stdout, _ = run(capsys, "cohort", "meds", "--data", str(DEMO), "--out", str(out),
                          "--json")  # fmt: skip
    assert code in (0, None)
    summary = json.loads(stdout)
    assert summary["source"] == "meds" and summary["stays"] > 0
    assert outputs(tmp_path) == ["demo.csv", "demo.summary.json", "demo.tableone.csv"]


@pytest.fixture(scope="module")
def real_like(tmp_path_factory):
    """A cohort without the simulator's hidden columns: what real data looks like."""
    cohort = simulate_cohort(n_stays=30, seed=3, progress=False)
    cohort = cohort.drop(columns=[c for c in cohort.columns if c.startswith("true_")])
    return write_cohort(cohort, tmp_path_factory.mktemp("real") / "real.parquet")


def test_mortality_on_real_data_refuses_state_policies(capsys, real_like):
    code, _, err = run(capsys, "mortality", "--policy", "clinician", "--cohort", str(real_like))
    assert code == 2 and "hidden true state" in " ".join(err.split())


@pytest.mark.slow
def test_mortality_on_real_data_says_there_is_no_truth(capsys, real_like):
    code, stdout, _ = run(capsys, "mortality", "--policy", "logged", "--cohort", str(real_like),
                          "--bootstrap", "10", "--json")  # fmt: skip
    assert code in (0, None)
    payload = json.loads(stdout)
    assert payload["truth"] is None and "no hidden truth" in payload["note"]
    assert "true_mortality" not in payload["ope"]
    assert {"wis", "dr", "fqe"} <= set(payload["ope"]["estimates"])
