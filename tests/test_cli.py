import json

import pytest

from safer.cli import main
from safer.cohorts import read_cohort


def run(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_simulate_then_validate(tmp_path, capsys):
    out_file = tmp_path / "c.parquet"
    code, out, _ = run(
        capsys,
        "cohort",
        "simulate",
        "--stays",
        "60",
        "--seed",
        "2",
        "--out",
        str(out_file),
        "--json",
    )
    assert code == 0
    summary = json.loads(out)
    assert summary["stays"] == 60 and 0 <= summary["mortality"] <= 1
    assert len(read_cohort(out_file)) == summary["steps"]
    code, out, _ = run(capsys, "cohort", "validate", str(out_file), "--json")
    assert code == 0 and json.loads(out)["valid"] is True


def test_simulate_streams_a_large_cohort_in_chunks(tmp_path, capsys):
    out_file = tmp_path / "c.parquet"
    code, out, _ = run(capsys, "cohort", "simulate", "--stays", "30", "--chunk-stays", "12",
                       "--out", str(out_file), "--json")  # fmt: skip
    assert code == 0
    summary = json.loads(out)
    assert summary["chunks"] == 3 and summary["rows"] == len(read_cohort(out_file))


def test_csv_output(tmp_path, capsys):
    code, _, _ = run(
        capsys, "cohort", "simulate", "--stays", "20", "--out", str(tmp_path / "c.csv"), "--json"
    )
    assert code == 0 and (tmp_path / "c.csv").stat().st_size > 0


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda df: df.drop(columns=["SOFA"]), "missing columns ['SOFA']"),
        (lambda df: df.assign(action=df["action"].where(df.index != 0, 25)), "outside 0..24"),
    ],
)
def test_invalid_file_gives_one_clear_error_and_no_traceback(
    tmp_path, capsys, small_cohort, mutate, message
):
    path = tmp_path / "bad.parquet"
    mutate(small_cohort.copy()).to_parquet(path)
    code, _, err = run(capsys, "cohort", "validate", str(path))
    assert code == 2
    assert message in err.replace("\n", " ") or message in err
    assert "Traceback" not in err


def test_corrupt_file_exit_code(tmp_path, capsys):
    path = tmp_path / "bad.parquet"
    path.write_text("garbage")
    code, _, err = run(capsys, "cohort", "validate", str(path))
    assert code == 2 and "could not read" in err and "Traceback" not in err


def test_demo_runs_every_stage(tmp_path, capsys):
    code, out, _ = run(capsys, "demo", "--stays", "80", "--episodes", "12", "--out", str(tmp_path),
                       "--json")  # fmt: skip
    assert code == 0
    result = json.loads(out)
    assert result["cohort"]["stays"] == 80
    assert sum(result["splits"].values()) == 80
    survivors = result["model"]["test_survivors"]
    assert survivors["mrr_at_3"] <= survivors["hr_at_3"]
    assert 0 <= result["gate"]["abstention_rate"] <= 1
    assert result["gate"]["method"] == "spi" and result["gate"]["promise"].endswith(">= 0")
    assert result["gates"]["lac"]["promise"] == "coverage >= 0.9"
    rows = {r["policy"]: r for r in result["mortality"]["rows"]}
    assert set(rows) == {
        "clinicians", "optimal", "SAFER", "SAFER + LAC gate", "SAFER + safe gate (spi)"
    }  # fmt: skip
    assert abs(rows["clinicians"]["mortality_pct"] - 21.8) < 0.05  # exact
    console = result["console"]
    assert console["recommendations_stored"] == result["model"]["test_all"]["n"]
    for name in ("model/model.json", "gate.json", "coverage_report.html", "gate_lac.json",
                 "audit_lac.html", "safer.db"):  # fmt: skip
        assert (tmp_path / name).exists(), name


def test_help_lists_commands(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "cohort" in out and "demo" in out
