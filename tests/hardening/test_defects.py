"""Issue 17: each numbered defect reproduced; each test fails on 750f5cf and passes now.

Defect 1 (wrong patient), 4 (audit trail) and 7 (security) are tested in tests/store
(test_identity.py, test_trail_and_security.py); the rest are here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from safer.cohorts import validate
from safer.conformal import calibrate_gate, load_gate
from safer.errors import CohortValidationError, SaferError
from tests.hardening.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]


def _edit(path: Path, out: Path, **changes) -> Path:
    raw = json.loads(path.read_text())
    for key, value in changes.items():
        if callable(value):
            value(raw)
        else:
            raw[key] = value
    out.write_text(json.dumps(raw))
    return out


# -- defect 2: a gate of another model, hand-edited gates, the calibration hash --------------------
def test_defect2_mortality_refuses_a_gate_calibrated_for_another_model(artifacts, capsys):
    policy = f"gated:{artifacts['model0']}:{artifacts['gate1']}"
    code, _, err = run_cli(capsys, "mortality", "--policy", policy, "--episodes", "5")
    assert code == 2 and "never transfers between models" in " ".join(err.split())


@pytest.mark.parametrize(
    "edit",
    [
        {"alpha": 0.05},
        {"method": "lac"},
        {"thresholds": lambda raw: raw["thresholds"].update({"lambda": 0.0})},  # LTT threshold
        {"calibration": lambda raw: raw["calibration"].update(
            {k: [0.0] * len(v) for k, v in raw["calibration"].items() if isinstance(v, list)})},
    ],
    ids=["alpha", "method", "ltt-threshold", "calibration-arrays"],
)  # fmt: skip
def test_defect2_a_hand_edited_gate_is_refused(artifacts, tmp_path, edit):
    path = _edit(artifacts["gate0"], tmp_path / "edited.json", **edit)
    with pytest.raises(SaferError, match="content hash|malformed"):
        load_gate(path)


def test_defect2_the_calibration_hash_covers_alpha_and_method():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.full(25, 0.3), size=300)
    y = proba.argmax(axis=1)
    a = calibrate_gate("lac", proba, y, alpha=0.1, model_hash="m")
    b = calibrate_gate("lac", proba, y, alpha=0.2, model_hash="m")
    c = calibrate_gate("aps", proba, y, alpha=0.1, model_hash="m")
    assert len({a.calibration_hash, b.calibration_hash, c.calibration_hash}) == 3


# -- defect 3: saves are atomic ---------------------------------------------------------------
def _fail_half_way(monkeypatch, target, name):
    real = getattr(target, name)

    def half(*args, **kwargs):
        real(*args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(target, name, half)


def test_defect3_a_failed_model_save_keeps_the_previous_folder(artifacts, tmp_path, monkeypatch):
    from safer.models import load_model

    folder = shutil.copytree(artifacts["model0"], tmp_path / "model")
    model = load_model(artifacts["model1"])  # another model saved over this folder
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    _fail_half_way(monkeypatch, torch, "save")
    with pytest.raises(OSError):
        model.save(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no partial folder left


def test_defect3_a_failed_gate_or_report_save_keeps_the_previous_file(
    artifacts, tmp_path, monkeypatch
):
    from safer.conformal.report import audit, write_report

    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.full(25, 0.3), size=200)
    y = proba.argmax(axis=1)
    report = audit(calibrate_gate("lac", proba[:100], y[:100], alpha=0.2, model_hash="m"),
                   proba[100:], y[100:], alphas=())  # fmt: skip
    gate_file = shutil.copy(artifacts["gate0"], tmp_path / "gate.json")
    report_file = tmp_path / "report.html"
    report_file.write_text("<html>the previous report</html>")
    before = (Path(gate_file).read_text(), report_file.read_text())
    gate = load_gate(gate_file)
    _fail_half_way(monkeypatch, Path, "write_text")
    with pytest.raises(OSError):
        gate.save(gate_file)
    with pytest.raises(OSError):
        write_report(report, report_file)
    monkeypatch.undo()
    assert (Path(gate_file).read_text(), report_file.read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gate.json", "report.html"]


# -- defect 5: one absurd value --------------------------------------------------------------------
@pytest.mark.parametrize("value, message", [(np.inf, "infinite"), (1e9, "physiological limits")])
def test_defect5_an_absurd_value_is_reported(cohort, value, message):
    cohort.loc[cohort.index[3], "HR"] = value
    with pytest.raises(CohortValidationError, match=f"'HR'.*{message}"):
        validate(cohort)


def test_defect5_cohort_validate_reports_it(cohort, tmp_path, capsys):
    cohort.loc[cohort.index[3], "HR"] = 1e9
    path = tmp_path / "c.parquet"
    cohort.to_parquet(path)
    code, _, err = run_cli(capsys, "cohort", "validate", path)
    assert code == 2 and "'HR'" in err and "physiological" in err


# -- defect 6: messages where tracebacks were ------------------------------------------------------
def test_defect6_time_zone_aware_times_are_read_or_refused(cohort, tmp_path, capsys):
    def paris(col):
        return cohort[col].dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")

    aware = cohort.assign(charttime=paris("charttime"), note_time=paris("note_time"))
    with pytest.raises(CohortValidationError, match="time-zone-aware"):
        validate(aware)
    aware.to_parquet(tmp_path / "aware.parquet")
    code, _, err = run_cli(capsys, "cohort", "validate", tmp_path / "aware.parquet")
    assert code == 0, err  # read as naive UTC


def _truncate(folder: Path, keep: float) -> None:
    weights = folder / "weights.pt"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize(
    "case, expected",
    [
        ("negative-seed", "--seed"),
        ("out-is-a-folder", "is a folder"),
        ("not-a-database", "not a SAFER database"),
        ("newer-database", "newer SAFER"),
        ("truncated-weights", "weights file"),
        ("empty-weights", "weights file"),
        ("gate-missing-field", "lacks the fields"),
        ("gate-extra-field", "does not know"),
        ("model-extra-field", "does not know"),
        ("session-minutes", "SAFER_SESSION_MINUTES"),
    ],
)
def test_defect6_a_message_not_a_traceback(case, expected, artifacts, tmp_path, capsys,
                                           monkeypatch):  # fmt: skip
    model = shutil.copytree(artifacts["model0"], tmp_path / "model")
    cohort, gate = artifacts["cohort"], artifacts["gate0"]
    db = f"sqlite:///{tmp_path / 'safer.db'}"
    args = {
        "negative-seed": ["cohort", "simulate", "--stays", "5", "--seed", "-1", "--out",
                          tmp_path / "c.parquet"],
        "out-is-a-folder": ["calibrate", "--model", model, "--cohort", cohort, "--out", tmp_path],
        "not-a-database": ["audit-trail", "verify", "--db", f"sqlite:///{cohort}"],
        "newer-database": ["audit-trail", "verify", "--db", db],
        "truncated-weights": ["evaluate", "--model", model, "--cohort", cohort],
        "empty-weights": ["evaluate", "--model", model, "--cohort", cohort],
        "gate-missing-field": ["audit", "--model", model, "--cohort", cohort, "--gate",
                               tmp_path / "g.json", "--out", tmp_path / "r.html"],
        "model-extra-field": ["evaluate", "--model", model, "--cohort", cohort],
        "session-minutes": ["console", "--db", db],
    }.get(case)  # fmt: skip
    if case == "newer-database":
        assert run_cli(capsys, "db", "upgrade", "--db", db)[0] == 0
        import sqlalchemy as sa

        engine = sa.create_engine(db)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
        engine.dispose()
    if case in ("truncated-weights", "empty-weights"):
        _truncate(model, 0.5 if case == "truncated-weights" else 0.0)
    if case in ("gate-missing-field", "gate-extra-field"):
        raw = json.loads(Path(gate).read_text())
        if case == "gate-missing-field":
            del raw["thresholds"]
        else:
            raw["package_version"], raw["new_knob"] = "9.0.0", 1
        (tmp_path / "g.json").write_text(json.dumps(raw))
        args = ["audit", "--model", model, "--cohort", cohort, "--gate", tmp_path / "g.json",
                "--out", tmp_path / "r.html"]  # fmt: skip
    if case == "model-extra-field":
        meta = json.loads((model / "model.json").read_text())
        meta["safer_version"], meta["config"]["new_knob"] = "9.0.0", 1
        (model / "model.json").write_text(json.dumps(meta))
    if case == "session-minutes":
        assert run_cli(capsys, "db", "upgrade", "--db", db)[0] == 0
        monkeypatch.setenv("SAFER_SESSION_MINUTES", "half an hour")
        # never start a server: a console that does not refuse the setting returns at once
        monkeypatch.setattr(subprocess, "call", mock.create_autospec(subprocess.call,
                                                                     return_value=0))  # fmt: skip
    code, out, err = run_cli(capsys, *args)
    text = " ".join((out + err).split())
    assert code == 2 and "Traceback" not in text and expected in text, text
    if case in ("gate-extra-field", "model-extra-field"):
        assert "9.0.0" in text  # the newer version is named


def test_defect6_a_model_of_another_version_loads_and_says_compatible(artifacts, tmp_path):
    from safer.models import load_model

    folder = shutil.copytree(artifacts["model0"], tmp_path / "model")
    original = load_model(folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["safer_version"] = "0.0.9"
    hashed = {k: v for k, v in meta.items() if k not in ("history", "content_hash")}
    meta["content_hash"] = original._compute_content_hash(hashed)  # as 0.0.9 would have saved
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match=r"0\.0\.9.*compatible"):
        assert load_model(folder).content_hash_ == meta["content_hash"]


# -- defect 8: what the user waits for -------------------------------------------------------------
def test_defect8_version_and_help_import_neither_torch_nor_pandas():
    probe = (
        "import sys\n"
        "from safer.cli import main\n"
        "for args in (['--version'], ['--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), exc.code\n"
        "heavy = sorted(m for m in ('torch', 'pandas', 'transformers', 'streamlit', 'sklearn')\n"
        "               if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    env = {"PYTHONPATH": str(REPO), "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, env=env,
        timeout=120,
    )  # fmt: skip
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_defect8_every_listed_command_matches_its_module():
    from safer.cli import COMMANDS, load_command

    for name, (_, _, short) in COMMANDS.items():
        command = load_command(name)
        assert command.name == name
        assert " ".join((command.help or "").split()).startswith(short.rstrip(".")), name


def test_the_documented_physiological_limits_are_the_codes():
    from safer.cohorts.schema import LIMITS

    text = (REPO / "docs" / "cohort.md").read_text()
    cells = [c.strip() for line in text.splitlines() if line.startswith("| `")
             for c in line.strip("|").split("|")]  # fmt: skip
    documented = {
        cells[i].strip("`"): tuple(float(v) for v in cells[i + 1].split(" – "))
        for i in range(0, len(cells) - 1, 2)
        if cells[i].startswith("`") and " – " in cells[i + 1]
    }
    assert documented == {k: (float(lo), float(hi)) for k, (lo, hi) in LIMITS.items()}


def test_defect7_the_console_listens_on_this_machine_only_by_default(tmp_path, capsys, monkeypatch):
    db = f"sqlite:///{tmp_path / 'safer.db'}"
    assert run_cli(capsys, "db", "upgrade", "--db", db)[0] == 0
    server = mock.create_autospec(subprocess.call, return_value=0)  # never start a server
    monkeypatch.setattr(subprocess, "call", server)
    code, _, err = run_cli(capsys, "console", "--db", db)
    command = server.call_args.args[0]
    assert code == 0 and command[command.index("--server.address") + 1] == "127.0.0.1"
    assert "this machine only" in " ".join(err.split())
