"""`safer benchmark` end to end at a tiny size: one table, JSON with the same numbers."""

from __future__ import annotations

import json

import pytest

from safer.cli import main
from safer.errors import SaferError
from safer.evaluation.benchmark import ORACLE, run_benchmark


def test_benchmark_cli_writes_one_table_and_the_same_numbers_as_json(tmp_path, capsys):
    out = tmp_path / "dtr.md"
    args = ["benchmark", "--stays", "60", "--seeds", "0", "--models", "safer-n,cql",
            "--episodes", "15", "--epochs", "1", "--rl-steps", "100", "--out", str(out),
            "--json"]  # fmt: skip
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 0
    payload = json.loads(capsys.readouterr().out)  # stdout is JSON only
    assert list(payload["models"]) == ["safer-n", "cql"]
    for cols in payload["models"].values():
        assert 0.0 <= cols["macro_auc"]["mean"] <= 1.0
        assert cols["mrr_at_3"]["mean"] <= cols["hr_at_3"]["mean"]
        assert 0.0 <= cols["gated_mortality_pct"]["mean"] <= 100.0
        assert 0.0 <= cols["abstention_pct"]["mean"] <= 100.0
        assert cols["fit_seconds"]["mean"] > 0
    refs = payload["references_mortality_pct"]
    assert round(refs["clinicians"], 1) == 21.8 and round(refs["optimal"], 1) == 12.5
    assert refs["optimal"] <= refs[ORACLE] <= 100.0

    table = out.read_text()
    assert "safer benchmark --stays 60 --seeds 0 --models safer-n,cql" in table
    assert "d3rlpy 2.8.1" in table and "- machine:" in table
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows[1:]] == [
        "safer-n", "cql", "clinicians (exact)", "optimal (exact)", f"{ORACLE} (exact)",
    ]  # fmt: skip
    assert all(r.count("|") == rows[0].count("|") for r in rows)
    cql = payload["models"]["cql"]
    assert f"{cql['macro_auc']['mean']:.3f}" in rows[2]
    assert f"{cql['gated_mortality_pct']['mean']:.1f}" in rows[2]


def test_bad_requests_fail_before_any_training():
    with pytest.raises(SaferError, match="unknown"):
        run_benchmark(stays=60, seeds=[0], models=["safer", "no-such-model"], progress=False)
    with pytest.raises(SaferError, match="at least one seed"):
        run_benchmark(stays=60, seeds=[], models=["cql"], progress=False)


def test_gates_side_by_side_for_the_gate_models():
    result = run_benchmark(
        stays=60, seeds=[0], models=["safer-n"], episodes=10, gates=["lac", "spi"],
        gate_models=["safer-n"], overrides={"safer-n": {"epochs": 1, "finetune_epochs": 1}},
        progress=False,
    )  # fmt: skip
    runs = result.gate_runs
    assert runs["gate"].tolist() == ["lac", "spi"]
    assert runs["abstention_pct"].between(0, 100).all()
    # the lac row is the main table's gated policy
    assert runs["gated_mortality_pct"].iloc[0] == result.runs["gated_mortality_pct"].iloc[0]
    table = result.markdown()
    assert "Gates side by side" in table and "safe policy improvement (delta 0.05) (`spi`)" in table
    with pytest.raises(SaferError, match="unknown gates"):
        run_benchmark(stays=60, seeds=[0], models=["cql"], gates=["topk"], progress=False)
