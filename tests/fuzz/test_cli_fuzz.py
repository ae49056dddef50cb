"""Every CLI entry point fed generated bad cohorts, model folders, gate files, databases and
options (hypothesis). The property of each run:

- the exit code is 0 or 2 (``audit-trail verify`` may also exit 1: a broken trail is its
  answer), never an exception escaping ``safer`` (a traceback);
- a refusal prints a message that names the problem (the file, column, field or option);
- no file is changed unless the run succeeded.

The fast part runs in ``make test`` in about a minute; runs that train are marked ``slow``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sqlite3
import string
import subprocess
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safer.cohorts import read_cohort
from safer.cohorts.schema import FEATURES
from tests.hardening.conftest import run_cli

_REAL_CALL = subprocess.call
FAST = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])  # fmt: skip
SLOW = settings(FAST, max_examples=8)
_N = 0


def _workdir(tmp_path: Path) -> Path:
    global _N
    _N += 1
    folder = tmp_path / f"run{_N}"
    folder.mkdir()
    return folder


def _digest(path: Path) -> str:
    """A file's content; for an SQLite database its rows and schema (WAL mode moves committed
    pages between ``-wal`` and the main file on a plain read, without changing any data)."""
    if path.suffix == ".db":
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                return hashlib.sha256("\n".join(db.iterdump()).encode()).hexdigest()
        except sqlite3.DatabaseError:
            pass  # not a database: compare its bytes
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(folder: Path) -> dict[str, str]:
    # "-wal" / "-shm": SQLite's log and its shared-memory index, read through the database
    return {
        str(p.relative_to(folder)): _digest(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def check(capsys, folder: Path, args: list, names: list[str], ok_codes=(0, 2)) -> int:
    """Run ``safer ARGS``; assert the property (module docstring); return the exit code."""
    before = _snapshot(folder)
    code, out, err = run_cli(capsys, *args)  # an escaping exception fails the test here
    text = " ".join((out + err).split())
    assert code in ok_codes, f"exit {code}: {text[-800:]}"
    assert "Traceback" not in text, text[-800:]
    if code != 0:
        assert _snapshot(folder) == before, f"files changed by a refused run: {text[-300:]}"
        assert any(n in text for n in names), f"message names none of {names}: {text[-500:]}"
    return code


# -- cohorts ---------------------------------------------------------------------------------------
BAD_VALUES = [np.inf, -np.inf, 1e9, -1e9, -1.0, 1e300]


@st.composite
def bad_cohorts(draw):
    """(mutate(frame) -> frame or bytes, words a message may name)."""
    kind = draw(st.sampled_from(["drop", "value", "text", "timezone", "duplicate", "shuffle",
                                 "truncate", "garbage", "empty", "nan-key"]))  # fmt: skip
    col = draw(st.sampled_from(FEATURES + ["age", "stay_id", "step", "action", "charttime"]))
    row = draw(st.integers(0, 50))
    if kind == "drop":
        return (lambda df: df.drop(columns=[col])), [col, "missing"]
    if kind == "value":
        value = draw(st.sampled_from(BAD_VALUES))
        feature = draw(st.sampled_from(FEATURES))

        def put(df):
            df = df.copy()
            df.loc[df.index[row], feature] = value
            return df

        return put, [feature]
    if kind == "text":
        return (lambda df: df.assign(**{col: df[col].astype(str)})), [col]
    if kind == "timezone":
        zone = draw(st.sampled_from(["UTC", "Asia/Tokyo", "America/New_York"]))
        return (lambda df: df.assign(charttime=df["charttime"].dt.tz_localize("UTC")
                                     .dt.tz_convert(zone))), ["charttime"]  # fmt: skip
    if kind == "duplicate":
        return (lambda df: pd.concat([df, df.iloc[[row]]])), ["share a (stay_id, step)"]
    if kind == "shuffle":
        return (lambda df: df.assign(step=np.random.default_rng(row).permutation(
            df["step"].to_numpy()))), ["step", "charttime"]  # fmt: skip
    if kind == "nan-key":
        key = draw(st.sampled_from(["stay_id", "step", "action", "died"]))

        def hole(df):
            df = df.copy()
            df[key] = df[key].astype(float)
            df.loc[df.index[row], key] = np.nan
            return df

        return hole, [key]
    fraction = draw(st.floats(0.0, 0.9))
    if kind == "truncate":
        return ("truncate", fraction), ["could not read", "cohort"]
    if kind == "garbage":
        return ("garbage", draw(st.binary(min_size=0, max_size=200))), ["could not read"]
    return ("garbage", b""), ["could not read"]


def _write_cohort(source: Path, target: Path, mutation) -> None:
    if isinstance(mutation, tuple):
        what, arg = mutation
        data = source.read_bytes()
        target.write_bytes(data[: int(len(data) * arg)] if what == "truncate" else arg)
        return
    frame = mutation(pd.read_parquet(source))
    if target.suffix == ".csv":
        frame.to_csv(target, index=False)
    else:
        frame.to_parquet(target, index=False)


@FAST
@given(mutation=bad_cohorts(), suffix=st.sampled_from([".parquet", ".csv"]))
def test_cohort_validate_on_bad_cohorts(artifacts, tmp_path, capsys, mutation, suffix):
    folder = _workdir(tmp_path)
    mutate, names = mutation
    path = folder / f"cohort{suffix}"
    _write_cohort(artifacts["cohort"], path, mutate)
    check(capsys, folder, ["cohort", "validate", path], names + [path.name])


@FAST
@given(mutation=bad_cohorts())
def test_db_load_on_bad_cohorts(artifacts, tmp_path, capsys, mutation):
    folder = _workdir(tmp_path)
    db = f"sqlite:///{folder / 'safer.db'}"
    assert run_cli(capsys, "db", "upgrade", "--db", db)[0] == 0
    mutate, names = mutation
    path = folder / "cohort.parquet"
    _write_cohort(artifacts["cohort"], path, mutate)
    args = ["db", "load", "--cohort", path, "--model", artifacts["model0"], "--gate",
            artifacts["gate0"], "--db", db, "--json"]  # fmt: skip
    check(capsys, folder, args, names + [path.name])


# -- model folders ---------------------------------------------------------------------------------
@st.composite
def bad_models(draw):
    kind = draw(st.sampled_from(["drop-key", "add-key", "retype", "version", "config-key",
                                 "truncate-weights", "garble-weights", "no-weights",
                                 "garble-json"]))  # fmt: skip
    key = draw(st.sampled_from(["model", "config", "content_hash", "safer_version", "history",
                                "split_seed", "feature_mean", "n_features"]))  # fmt: skip
    value = draw(st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=5), st.just([1, 2])))
    version = draw(st.sampled_from(["0.0.1", "9.9.9", "dev", "", "0.1.0"]))
    fraction = draw(st.floats(0.0, 0.95))
    return kind, key, value, version, fraction


def _mutate_model(folder: Path, mutation) -> None:
    kind, key, value, version, fraction = mutation
    meta_path, weights = folder / "model.json", folder / "weights.pt"
    meta = json.loads(meta_path.read_text())
    if kind == "drop-key":
        meta.pop(key, None)
    elif kind == "add-key":
        meta[f"new_{key}"] = value
    elif kind == "retype":
        meta[key] = value
    elif kind == "version":
        meta["safer_version"] = version
    elif kind == "config-key":
        meta["config"][f"new_{key}"] = value
    if kind in ("truncate-weights", "garble-weights", "no-weights"):
        data = weights.read_bytes()
        if kind == "no-weights":
            weights.unlink()
        else:
            weights.write_bytes(data[: int(len(data) * fraction)] if kind == "truncate-weights"
                                else bytes(reversed(data)))  # fmt: skip
        return
    meta_path.write_text("{" if kind == "garble-json" else json.dumps(meta))


@FAST
@given(mutation=bad_models())
def test_evaluate_and_calibrate_on_bad_model_folders(artifacts, tmp_path, capsys, mutation):
    folder = _workdir(tmp_path)
    model = shutil.copytree(artifacts["model0"], folder / "model")
    _mutate_model(model, mutation)
    names = ["model", "weights", "safer"]
    check(capsys, folder, ["evaluate", "--model", model, "--cohort", artifacts["cohort"]], names)
    check(capsys, folder, ["calibrate", "--model", model, "--cohort", artifacts["cohort"],
                           "--out", folder / "gate.json"], names)  # fmt: skip


# -- gate files ------------------------------------------------------------------------------------
@st.composite
def bad_gates(draw):
    kind = draw(st.sampled_from(["drop", "add", "set", "garble", "format", "newer"]))
    key = draw(st.sampled_from(["method", "alpha", "delta", "thresholds", "calibration",
                                "model_hash", "calibration_hash", "content_hash", "seed",
                                "uncertainty", "groups_column"]))  # fmt: skip
    value = draw(st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-5, 5),
                           st.text(max_size=6), st.just({}), st.just([0.1])))  # fmt: skip
    return kind, key, value


def _mutate_gate(path: Path, mutation) -> None:
    kind, key, value = mutation
    raw = json.loads(path.read_text())
    if kind == "drop":
        raw.pop(key, None)
    elif kind == "add":
        raw[f"new_{key}"] = value
    elif kind == "set":
        raw[key] = value
    elif kind == "format":
        raw["format"] = value
    elif kind == "newer":
        raw["package_version"], raw["new_field"] = "9.0.0", value
    path.write_text("[1, 2" if kind == "garble" else json.dumps(raw, allow_nan=True))


@FAST
@given(mutation=bad_gates())
def test_audit_and_db_load_on_bad_gates(artifacts, tmp_path, capsys, mutation):
    folder = _workdir(tmp_path)
    gate = Path(shutil.copy(artifacts["gate0"], folder / "gate.json"))
    _mutate_gate(gate, mutation)
    names = ["gate", "gate.json"]
    audit = ["audit", "--model", artifacts["model0"], "--gate", gate, "--cohort",
             artifacts["cohort"], "--out", folder / "report.html"]  # fmt: skip
    check(capsys, folder, audit, names)
    db = f"sqlite:///{folder / 'safer.db'}"
    assert run_cli(capsys, "db", "upgrade", "--db", db)[0] == 0
    check(capsys, folder, ["db", "load", "--cohort", artifacts["cohort"], "--model",
                           artifacts["model0"], "--gate", gate, "--db", db], names)  # fmt: skip


# -- databases -------------------------------------------------------------------------------------
@st.composite
def bad_databases(draw):
    kind = draw(st.sampled_from(["garbage", "empty", "truncated", "newer", "older", "no-table",
                                 "no-schema", "missing-dir"]))  # fmt: skip
    return kind, draw(st.binary(max_size=100)), draw(st.floats(0.05, 0.9))


def _make_database(folder: Path, capsys, mutation) -> str:
    kind, blob, fraction = mutation
    path = folder / "safer.db"
    if kind == "missing-dir":
        return f"sqlite:///{folder / 'nowhere' / 'safer.db'}"
    if kind in ("garbage", "empty"):
        path.write_bytes(blob if kind == "garbage" else b"")
        return f"sqlite:///{path}"
    url = f"sqlite:///{path}"
    if kind != "no-schema":
        assert run_cli(capsys, "db", "upgrade", "--db", url)[0] == 0
    with sqlite3.connect(path) as conn:
        if kind == "newer":
            conn.execute("UPDATE alembic_version SET version_num = '9999'")
        elif kind == "older":
            conn.execute("UPDATE alembic_version SET version_num = '0001'")
        elif kind == "no-table":
            conn.execute("DROP TABLE audit_head")
    if kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: max(1, int(len(data) * fraction))])
    return url


@FAST
@given(mutation=bad_databases())
def test_db_commands_on_bad_databases(artifacts, tmp_path, capsys, mutation):
    folder = _workdir(tmp_path)
    url = _make_database(folder, capsys, mutation)
    names = ["database", "safer.db", "migration", "schema", "audit"]
    check(capsys, folder, ["audit-trail", "verify", "--db", url, "--json"], names, (0, 1, 2))
    check(capsys, folder, ["db", "load", "--cohort", artifacts["cohort"], "--model",
                           artifacts["model0"], "--db", url], names)  # fmt: skip
    check(capsys, folder, ["db", "add-user", "ana", "--role", "clinician", "--password",
                           "ana-password", "--db", url], names)  # fmt: skip


# -- options ---------------------------------------------------------------------------------------
numbers = st.one_of(st.integers(-10, 12).map(str), st.sampled_from(["1e8", "nan", "inf", "-0",
                    "0.5", "", "ten", "99999999999999999999"]))  # fmt: skip
words = st.text(alphabet=string.ascii_letters + string.digits + ":/._-", max_size=12)


@FAST
@given(stays=numbers, seed=numbers, noise=numbers, fill=numbers,
       suffix=st.sampled_from([".parquet", ".csv", ".txt", "/", ""]))  # fmt: skip
def test_cohort_simulate_options(tmp_path, capsys, stays, seed, noise, fill, suffix):
    folder = _workdir(tmp_path)
    out = f"{folder}/c{suffix}" if suffix != "/" else str(folder)
    args = ["cohort", "simulate", "--stays", stays, "--seed", seed, "--noise-scale", noise,
            "--note-fill", fill, "--out", out, "--json"]  # fmt: skip
    check(capsys, folder, args, ["--stays", "--seed", "--noise-scale", "--note-fill", "--out",
                                 "folder", "file type", str(folder)])  # fmt: skip


@FAST
@given(method=st.one_of(st.sampled_from(["lac", "aps", "raps", "ltt", "selection"]), words),
       alpha=numbers, delta=numbers, groups=st.one_of(st.none(), words))  # fmt: skip
def test_calibrate_options(artifacts, tmp_path, capsys, method, alpha, delta, groups):
    folder = _workdir(tmp_path)
    args = [
        "calibrate",
        "--model",
        artifacts["model0"],
        "--cohort",
        artifacts["cohort"],
        "--method",
        method,
        "--alpha",
        alpha,
        "--delta",
        delta,
        "--out",
        folder / "g.json",
    ]
    args += [] if groups is None else ["--groups", groups]
    check(capsys, folder, args, ["--alpha", "--delta", "--method", "--groups", "method", "alpha",
                                 "delta", "group", "column", "--c", "kappa"])  # fmt: skip


@FAST
@given(policy=st.one_of(st.sampled_from(["clinician", "optimal", "random", "model:", "gated:",
                                         "gated:a:b", "model:/nonexistent"]), words),
       episodes=numbers, seed=numbers)  # fmt: skip
def test_mortality_options(tmp_path, capsys, policy, episodes, seed):
    folder = _workdir(tmp_path)
    if episodes.lstrip("-").isdigit() and int(episodes) > 50:
        episodes = "50"  # valid sizes are kept small: the property, not the speed, is tested
    args = ["mortality", "--policy", policy, "--episodes", episodes, "--seed", seed, "--json"]
    check(capsys, folder, args, ["--policy", "--episodes", "--seed", "policy"])


@FAST
@given(args=st.lists(st.one_of(words, st.sampled_from(["--json", "--help", "--db", "--out",
                                                        "db", "audit-trail", "verify"])),
                     max_size=4))  # fmt: skip
def test_arbitrary_arguments(tmp_path, capsys, args):
    folder = _workdir(tmp_path)
    if "--db" not in args and args[:1] in (["db"], ["audit-trail"]):
        args = [*args, "--db", f"sqlite:///{folder / 'safer.db'}"]
    if args[:1] in (["demo"], ["benchmark"], ["train"], ["console"]):
        args = [*args, "--help"]  # the long-running commands are fuzzed in the slow part
    check(capsys, folder, args, ["Usage", "error", "Error", "No such", "command", "option",
                                 "database"], (0, 1, 2))  # fmt: skip


@FAST
@given(anchor=words, segment=words, steps=numbers, strength=numbers,
       model=st.sampled_from(["missing", "cohort-model", "empty"]))  # fmt: skip
def test_tsedit_edit_inputs(artifacts, tmp_path, capsys, anchor, segment, steps, strength, model):
    folder = _workdir(tmp_path)
    folder_model = {"missing": folder / "nowhere", "cohort-model": artifacts["model0"],
                    "empty": folder / "empty"}[model]  # fmt: skip
    (folder / "empty").mkdir()
    (folder / "s.csv").write_text("HR,MeanBP\n80,70\n82,71\n")
    args = ["tsedit", "edit", "--model", folder_model, "--series", folder / "s.csv", "--anchor",
            anchor, "--segment", segment, "--steps", steps, "--strength", strength, "--out",
            folder / "out.csv"]  # fmt: skip
    check(capsys, folder, args, ["--steps", "--strength", "--anchor", "--segment", "model",
                                 "nowhere", "empty", "tsedit"])  # fmt: skip


@FAST
@given(data=st.sampled_from(["missing.inter", "bad.csv", "cohort"]), split=words,
       model=st.sampled_from(["missing", "cohort-model"]))  # fmt: skip
def test_seqrec_evaluate_inputs(artifacts, tmp_path, capsys, data, split, model):
    folder = _workdir(tmp_path)
    (folder / "bad.csv").write_text("user,item\n")
    data_path = artifacts["cohort"] if data == "cohort" else folder / data
    model_path = artifacts["model0"] if model == "cohort-model" else folder / "nowhere"
    args = ["seqrec", "evaluate", "--model", model_path, "--data", data_path, "--split", split]
    check(capsys, folder, args, ["model", "nowhere", "seqrec", "--split", "split", "data",
                                 "missing.inter", "bad.csv", "cohort"])  # fmt: skip


@FAST
@given(port=numbers, address=st.one_of(words, st.sampled_from(["0.0.0.0", "::1", "localhost",
                                                                 "999.1.1.1"])),
       minutes=st.one_of(st.none(), numbers))  # fmt: skip
def test_console_options(tmp_path, capsys, monkeypatch, port, address, minutes):
    folder = _workdir(tmp_path)
    db = f"sqlite:///{folder / 'safer.db'}"
    assert run_cli(capsys, "db", "upgrade", "--db", db)[0] == 0
    server = mock.create_autospec(_REAL_CALL, return_value=0)  # never start a server
    monkeypatch.setattr(subprocess, "call", server)
    if minutes is None:
        monkeypatch.delenv("SAFER_SESSION_MINUTES", raising=False)
    else:
        monkeypatch.setenv("SAFER_SESSION_MINUTES", minutes)
    code = check(capsys, folder, ["console", "--db", db, "--port", port, "--address", address],
                 ["--port", "--address", "SAFER_SESSION_MINUTES"])  # fmt: skip
    if code == 0:
        command = server.call_args.args[0]
        assert command[command.index("--server.address") + 1] == address


@FAST
@given(seeds=words, models=words, stays=numbers, episodes=numbers)
def test_benchmark_and_demo_refusals(tmp_path, capsys, seeds, models, stays, episodes):
    folder = _workdir(tmp_path)
    valid_stays = stays.isdigit() and int(stays) >= 20
    if (
        valid_stays
        and models.strip(",") == ""
        and all(s.strip().isdigit() for s in seeds.split(",") if s.strip())
    ):
        stays = "-1"  # a run that would really train every model: keep the refusal side
    args = ["benchmark", "--stays", stays, "--seeds", seeds, "--models", models or "nope",
            "--episodes", episodes, "--out", folder / "b.md"]  # fmt: skip
    check(capsys, folder, args, ["--stays", "--seeds", "--models", "--episodes", "model",
                                 "seeds"])  # fmt: skip
    if not (stays.isdigit() and int(stays) >= 60):
        check(capsys, folder, ["demo", "--stays", stays, "--episodes", episodes, "--out",
                               folder / "demo"], ["--stays", "--episodes"])  # fmt: skip


# -- slow: entry points that train -----------------------------------------------------------------
@pytest.mark.slow
@SLOW
@given(variant=st.one_of(st.sampled_from(["safer-n", "lstm", "cql", "no-such"]), words),
       epochs=numbers, d_model=numbers, seed=numbers)  # fmt: skip
def test_train_options(artifacts, tmp_path, capsys, variant, epochs, d_model, seed):
    folder = _workdir(tmp_path)
    if epochs.isdigit() and int(epochs) > 1:
        epochs = "1"
    args = ["train", "--cohort", artifacts["cohort"], "--variant", variant, "--epochs", epochs,
            "--finetune-epochs", "1", "--d-model", d_model, "--seed", seed, "--threads", "1",
            "--out", folder / "model", "--json"]  # fmt: skip
    check(capsys, folder, args, ["--variant", "--epochs", "--d-model", "--seed", "model",
                                 "variant", "d_model"])  # fmt: skip


@pytest.mark.slow
@SLOW
@given(mutation=bad_cohorts())
def test_train_on_bad_cohorts(artifacts, tmp_path, capsys, mutation):
    folder = _workdir(tmp_path)
    mutate, names = mutation
    path = folder / "cohort.parquet"
    _write_cohort(artifacts["cohort"], path, mutate)
    args = [
        "train",
        "--cohort",
        path,
        "--variant",
        "safer-n",
        "--epochs",
        "1",
        "--finetune-epochs",
        "1",
        "--d-model",
        "8",
        "--out",
        folder / "model",
        "--json",
    ]
    check(capsys, folder, args, names + [path.name])


def test_the_fixture_cohort_is_valid(artifacts):
    assert len(read_cohort(artifacts["cohort"])) > 0
