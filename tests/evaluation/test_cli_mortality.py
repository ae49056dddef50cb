from __future__ import annotations

import json
import subprocess
import sys

import pytest

from safer.cli import main


def test_mortality_json_gives_exact_and_rollout(capsys):
    with pytest.raises(SystemExit) as info:
        main(["mortality", "--policy", "optimal", "--episodes", "3000", "--seed", "1", "--json"])
    assert info.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["policy"] == "optimal" and out["method"] == "exact"
    assert out["mortality"] == pytest.approx(0.1249, abs=5e-4)
    assert out["ci_low"] == out["ci_high"] == out["mortality"]
    assert out["rollout"]["ci_low"] <= out["mortality"] <= out["rollout"]["ci_high"]
    assert out["episodes"] == 3000 and out["ope"] == {}
    assert "absolute" in out["units"]


def test_unknown_policy_exits_2_with_the_known_names():
    proc = subprocess.run(
        [sys.executable, "-m", "safer", "mortality", "--policy", "best", "--json"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "known policies: clinician" in proc.stderr and "Traceback" not in proc.stderr
