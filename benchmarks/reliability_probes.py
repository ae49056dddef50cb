"""Reliability probes: the CLI, artifacts, store, audit trail and console as a hostile new user
tries them, on two source trees side by side; writes docs/benchmarks/reliability.md.

Every probe prepares its input in a fresh folder (from artifacts each tree made with its own
``safer`` on the same simulated cohort), runs one ``python -m safer ...`` command (or a short
Python snippet for what has no command: sign-in, logging, a failing save) with ``PYTHONPATH`` set
to the tree, and is classified:

===================  =========================================================================
outcome              meaning
===================  =========================================================================
correct              did the right thing (exit 0 with the right result, or the check answered)
clear error          refused (exit 1/2) with a message naming the problem, no traceback
silent wrong result  exit 0 (or a check saying ok) where the input should have been refused
traceback            a Python traceback reached the user
unclear error        refused without naming the problem
data lost            a file that existed before a failed run was changed or destroyed
===================  =========================================================================

Usage (the baseline is a plain export of a commit, outside the work trees)::

    git archive 750f5cf | tar -x -C /tmp/baseline
    python benchmarks/reliability_probes.py --before /tmp/baseline --after . \\
        --out docs/benchmarks/reliability.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import header, write_page  # noqa: E402

OUTCOMES = ["correct", "clear error", "silent wrong result", "traceback", "unclear error",
            "data lost"]  # fmt: skip


@dataclass
class Probe:
    cls: str
    name: str
    args: list | None = None  # `safer ARGS` (strings; {ws} {cohort} {model} ... formatted)
    py: str | None = None  # or a Python snippet run with the tree on PYTHONPATH
    argv: list[str] = field(default_factory=list)  # the snippet's arguments (formatted)
    prep: Callable[[Path, dict], None] | None = None
    refuse: bool = True  # the right answer is a refusal (exit != 0)
    names: list[str] = field(default_factory=list)  # words a clear message contains
    judge: Callable[[int, str, Path], str] | None = None  # outcome when exit is 0 / custom
    keep: list[str] = field(default_factory=list)  # files a failed run must leave unchanged
    env: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------- helpers
def _digest(path: Path) -> str:
    if path.is_dir():
        return "|".join(f"{p.name}:{_digest(p)}" for p in sorted(path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


def _run(tree: Path, ws: Path, args: list[str] | None, py: str | None, env: dict) -> tuple:
    cmd = [sys.executable, "-m", "safer", *args] if args is not None else [sys.executable, "-c", py]
    full_env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "200", **env}
    full_env.pop("SAFER_DB_URL", None)
    try:
        done = subprocess.run(cmd, cwd=ws, env=full_env, capture_output=True, text=True,
                              timeout=600)  # fmt: skip
        return done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        return 124, "timed out"


def _cohort(ws: Path, art: dict, mutate, name="cohort.parquet") -> None:
    frame = pd.read_parquet(art["cohort"])
    out = mutate(frame.copy())
    if name.endswith(".csv"):
        out.to_csv(ws / name, index=False)
    else:
        out.to_parquet(ws / name, index=False)


def _set(col, value, row=3):
    def mutate(df):
        df.loc[df.index[row], col] = value
        return df

    return mutate


def _copy_model(ws: Path, art: dict, edit=None, rehash=False, weights=None) -> None:
    folder = ws / "model"
    shutil.copytree(art["model"], folder)
    meta = json.loads((folder / "model.json").read_text())
    if edit:
        edit(meta)
        if rehash:  # as a version with these fields would have saved it (hash recomputed)
            meta["content_hash"] = _rehash(folder, meta)
        (folder / "model.json").write_text(json.dumps(meta))
    if weights is not None:
        weights(folder / "weights.pt")


def _rehash(folder: Path, meta: dict) -> str:
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(torch.load(folder / "weights.pt", weights_only=True).items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    hashed = {k: v for k, v in meta.items() if k not in ("history", "content_hash")}
    h.update(json.dumps(hashed, sort_keys=True).encode())
    return h.hexdigest()


def _copy_gate(ws: Path, art: dict, edit=None, key="gate") -> None:
    raw = json.loads(Path(art[key]).read_text())
    if edit:
        edit(raw)
    (ws / "gate.json").write_text(json.dumps(raw))


def _db(ws: Path, tree: Path, *more: list[str]) -> None:
    url = f"sqlite:///{ws / 'safer.db'}"
    for args in (["db", "upgrade", "--db", url], *more):
        code, text = _run(tree, ws, [a.format(ws=ws, url=url) for a in args], None, {})
        if code != 0:
            raise RuntimeError(f"probe setup failed: {args}: {text[-400:]}")


def _sql(ws: Path, *statements: str) -> None:
    with sqlite3.connect(ws / "safer.db") as conn:
        for s in statements:
            conn.execute(s)


def _loaded_db(ws: Path, art: dict) -> None:
    """A database in ``ws`` with the small cohort loaded under the model (``safer db load``)."""
    _db(ws, art["tree"], ["db", "load", "--cohort", str(art["small"]), "--model",
                          str(art["model"]), "--db", "{url}"])  # fmt: skip


def _trail(tree: Path, ws: Path, art: dict, review: bool) -> None:
    """A database with users, a loaded cohort and (optionally) one override review: built once
    per tree (in the artifacts folder) and copied into the probe's folder."""
    built = Path(art["cohort"]).parent / ("trail-reviewed" if review else "trail")
    if not (built / "safer.db").exists():
        built.mkdir(exist_ok=True)
        _build_trail(tree, built, art, review)
    shutil.copy(built / "safer.db", ws / "safer.db")


def _build_trail(tree: Path, ws: Path, art: dict, review: bool) -> None:
    _db(ws, tree, ["db", "add-user", "ana", "--role", "clinician", "--password",
                   "ana-password", "--db", "{url}"],
        ["db", "add-user", "cy", "--role", "auditor", "--password", "cy-password",
         "--db", "{url}"],
        ["db", "load", "--cohort", str(art["small"]), "--model", str(art["model"]), "--db",
         "{url}", "--json"])  # fmt: skip
    if review:
        code, text = _run(tree, ws, None, _REVIEW.format(url=f"sqlite:///{ws / 'safer.db'}"), {})
        if code != 0:
            raise RuntimeError(f"review setup failed: {text[-400:]}")


_REVIEW = """
from safer.store import connect, authenticate, review_queue, submit_review
S = connect("{url}")
with S() as s:
    user = authenticate(s, "ana", "ana-password")
with S() as s:
    rec = review_queue(s, user)[0]["id"]
    submit_review(s, user, rec, "override", chosen_action=3, reason="MAP already 75")
"""


def _verify_judge(code: int, text: str, ws: Path) -> str:
    """`audit-trail verify`: exit 1 with problems is the right answer to tampering."""
    if code == 1 and '"ok": false' in text:
        return "correct"
    if code == 0 and '"ok": true' in text:
        return "silent wrong result"
    return "unclear error"


def _ok_if_zero(code: int, text: str, ws: Path) -> str:
    return "correct" if code == 0 else "clear error"


def _marker(word: str) -> Callable[[int, str, Path], str]:
    def judge(code: int, text: str, ws: Path) -> str:
        if code == 0 and word in text:
            return "correct"
        return "silent wrong result" if code == 0 else "clear error"

    return judge


# ----------------------------------------------------------------------------- probes
def probes(art: dict) -> list[Probe]:
    validate = ["cohort", "validate", "cohort.parquet"]
    load = ["db", "load", "--cohort", "cohort.parquet", "--model", "{model}", "--db",
            "sqlite:///{ws}/safer.db", "--json"]  # fmt: skip
    evaluate = ["evaluate", "--model", "model", "--cohort", "{cohort}"]
    audit = ["audit", "--model", "{model}", "--gate", "gate.json", "--cohort", "{cohort}",
             "--out", "report.html"]  # fmt: skip
    gated = ["mortality", "--policy", "gated:{model}:gate.json", "--episodes", "5"]
    verify = ["audit-trail", "verify", "--db", "sqlite:///{ws}/safer.db", "--json"]
    C, O, M, G, D, S, T, X, A = ("cohort files", "options", "model folders", "gate files",
                                 "databases", "store identity", "audit trail", "security",
                                 "atomic writes")  # fmt: skip

    def tampered_trail(title: str, reviews: bool, sql: str) -> Probe:
        """Verify a trail (with or without reviews) after ``sql`` edited the database behind it."""
        return Probe(
            T, title, verify, refuse=False, judge=_verify_judge,
            prep=lambda ws, a: (_trail(a["tree"], ws, a, reviews), _sql(ws, sql)),
        )  # fmt: skip

    def cohort_probe(name, mutate, names, refuse=True, file="cohort.parquet", judge=None):
        args = ["cohort", "validate", file]
        return Probe(C, name, args, prep=lambda ws, a: _cohort(ws, a, mutate, file),
                     refuse=refuse, names=names, judge=judge)  # fmt: skip

    def tz(df):
        for col in ("charttime", "note_time"):
            df[col] = df[col].dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo")
        return df

    def offsets_csv(df):
        df = tz(df)
        df["charttime"] = df["charttime"].map(lambda t: t.isoformat())
        return df

    def late_note(df):
        i = df.index[df["note"] != ""][0]
        df.loc[i, "note_time"] = df.loc[i, "charttime"] + pd.Timedelta(hours=2)
        return df

    out = [
        cohort_probe("HR = inf", _set("HR", float("inf")), ["HR"]),
        cohort_probe("HR = -inf", _set("HR", float("-inf")), ["HR"]),
        cohort_probe("HR = 1e9", _set("HR", 1e9), ["HR"]),
        cohort_probe("FiO2 in percent (40)", _set("FiO2_1", 40.0), ["FiO2_1"]),
        cohort_probe("negative age", _set("age", -5.0), ["age"]),
        cohort_probe("SysBP = 1e300", _set("SysBP", 1e300), ["SysBP"]),
        cohort_probe(
            "time-zone-aware times (parquet)", tz, ["charttime"], refuse=False, judge=_ok_if_zero
        ),  # fmt: skip
        cohort_probe(
            "times with offsets (CSV)",
            offsets_csv,
            ["charttime"],
            refuse=False,
            file="cohort.csv",
            judge=_ok_if_zero,
        ),  # fmt: skip
        cohort_probe("a missing column", lambda df: df.drop(columns=["SOFA"]), ["SOFA"]),
        cohort_probe("a note after the decision", late_note, ["note"]),
        cohort_probe("duplicated rows", lambda df: pd.concat([df, df.iloc[:2]]), ["stay_id"]),
        cohort_probe("text in HR", lambda df: df.assign(HR=df["HR"].astype(str)), ["HR"]),
        Probe(
            C,
            "a truncated parquet file",
            validate,
            names=["cohort.parquet"],
            prep=lambda ws, a: (ws / "cohort.parquet").write_bytes(
                Path(a["cohort"]).read_bytes()[:3000]
            ),
        ),
        Probe(
            C,
            "an empty file",
            validate,
            names=["cohort.parquet"],
            prep=lambda ws, a: (ws / "cohort.parquet").write_bytes(b""),
        ),
        Probe(
            C,
            "a binary file named .csv",
            ["cohort", "validate", "c.csv"],
            names=["c.csv"],
            prep=lambda ws, a: (ws / "c.csv").write_bytes(bytes(range(256)) * 4),
        ),
        Probe(
            C,
            "db load of a cohort with HR = inf",
            load,
            names=["HR"],
            prep=lambda ws, a: (_cohort(ws, a, _set("HR", float("inf"))), _db(ws, a["tree"])),
        ),
        # -- options
        Probe(
            O,
            "cohort simulate --seed -1",
            ["cohort", "simulate", "--stays", "5", "--seed", "-1", "--out", "c.parquet"],
            names=["--seed"],
        ),  # fmt: skip
        Probe(
            O,
            "train --seed -3",
            ["train", "--cohort", "{cohort}", "--seed", "-3", "--out", "m"],
            names=["--seed"],
        ),  # fmt: skip
        Probe(
            O,
            "calibrate --out a folder",
            ["calibrate", "--model", "{model}", "--cohort", "{cohort}", "--out", "."],
            names=["folder", "directory"],
        ),  # fmt: skip
        Probe(
            O,
            "cohort simulate --out a folder",
            ["cohort", "simulate", "--stays", "5", "--out", "."],
            names=["folder", "directory", "file type"],
        ),  # fmt: skip
        Probe(
            O,
            "cohort simulate --out x.txt",
            ["cohort", "simulate", "--stays", "5", "--out", "x.txt"],
            names=["file type"],
        ),  # fmt: skip
        Probe(
            O,
            "--out under a file",
            ["cohort", "simulate", "--stays", "5", "--out", "f/c.parquet"],
            names=["f/c.parquet", "f"],
            prep=lambda ws, a: (ws / "f").write_text("a file"),
        ),  # fmt: skip
        Probe(
            O,
            "--stays 1e8",
            ["cohort", "simulate", "--stays", "1e8", "--out", "c.parquet"],
            names=["--stays"],
        ),
        Probe(
            O,
            "calibrate --alpha 1.5",
            [
                "calibrate",
                "--model",
                "{model}",
                "--cohort",
                "{cohort}",
                "--alpha",
                "1.5",
                "--out",
                "g.json",
            ],
            names=["alpha"],
        ),  # fmt: skip
        Probe(
            O,
            "calibrate --method topk",
            [
                "calibrate",
                "--model",
                "{model}",
                "--cohort",
                "{cohort}",
                "--method",
                "topk",
                "--out",
                "g.json",
            ],
            names=["topk"],
        ),  # fmt: skip
        Probe(
            O,
            "calibrate --groups no-such-column",
            [
                "calibrate",
                "--model",
                "{model}",
                "--cohort",
                "{cohort}",
                "--method",
                "lac",
                "--groups",
                "nope",
                "--out",
                "g.json",
            ],
            names=["nope"],
        ),  # fmt: skip
        Probe(
            O,
            "mortality --policy nonsense",
            ["mortality", "--policy", "nonsense"],
            names=["nonsense", "policy"],
        ),
        Probe(
            O,
            "mortality --episodes 0",
            ["mortality", "--policy", "clinician", "--episodes", "0"],
            names=["--episodes"],
        ),  # fmt: skip
        Probe(
            O,
            "a non-numeric SAFER_SESSION_MINUTES",
            py=_CONSOLE.format(db="sqlite:///x.db"),
            names=["SAFER_SESSION_MINUTES"],
            env={"SAFER_SESSION_MINUTES": "half an hour"},
            prep=lambda ws, a: _db(ws, a["tree"]) or shutil.move(ws / "safer.db", ws / "x.db"),
        ),
        # -- model folders
        Probe(
            M,
            "a truncated weights file",
            evaluate,
            names=["weights"],
            prep=lambda ws, a: _copy_model(
                ws, a, weights=lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
            ),
        ),
        Probe(
            M,
            "a 0-byte weights file",
            evaluate,
            names=["weights"],
            prep=lambda ws, a: _copy_model(ws, a, weights=lambda p: p.write_bytes(b"")),
        ),
        Probe(
            M,
            "no weights file",
            evaluate,
            names=["weights"],
            prep=lambda ws, a: _copy_model(ws, a, weights=lambda p: p.unlink()),
        ),
        Probe(
            M,
            "model.json not JSON",
            evaluate,
            names=["model.json", "JSON"],
            prep=lambda ws, a: (_copy_model(ws, a), (ws / "model" / "model.json").write_text("{")),
        ),
        Probe(
            M,
            "model.json without its config",
            evaluate,
            names=["config", "model"],
            prep=lambda ws, a: _copy_model(ws, a, edit=lambda m: m.pop("config")),
        ),
        Probe(
            M,
            "a config field from a newer version",
            evaluate,
            names=["9.0.0"],
            prep=lambda ws, a: _copy_model(
                ws,
                a,
                edit=lambda m: (m.update(safer_version="9.0.0"), m["config"].update(new_knob=1)),
                rehash=True,
            ),
        ),
        Probe(
            M,
            "a learned field missing",
            evaluate,
            names=["model.json", "learned"],
            prep=lambda ws, a: _copy_model(
                ws,
                a,
                edit=lambda m: m.pop(
                    next(
                        k
                        for k in m
                        if k not in ("model", "safer_version", "config", "history", "content_hash")
                    )
                ),
                rehash=True,
            ),
        ),
        Probe(
            M,
            "saved by another version (0.0.9)",
            evaluate,
            refuse=False,
            judge=lambda code, text, ws: "correct" if code == 0 else "unclear error",
            prep=lambda ws, a: _copy_model(
                ws, a, edit=lambda m: m.update(safer_version="0.0.9"), rehash=True
            ),
        ),
        Probe(
            M,
            "an edited config value",
            evaluate,
            names=["content hash"],
            prep=lambda ws, a: _copy_model(ws, a, edit=lambda m: m["config"].update(seed=99)),
        ),
        Probe(
            M,
            "weights of another model",
            evaluate,
            names=["content hash", "weights"],
            prep=lambda ws, a: _copy_model(
                ws, a, weights=lambda p: shutil.copy(Path(a["model1"]) / "weights.pt", p)
            ),
        ),
        Probe(
            M,
            "a folder of another kind",
            evaluate,
            names=["model"],
            prep=lambda ws, a: _copy_model(ws, a, edit=lambda m: m.update(model="Other")),
        ),
        # -- gate files
        Probe(
            G,
            "mortality with another model's gate",
            gated,
            names=["model"],
            prep=lambda ws, a: _copy_gate(ws, a, key="gate1"),
        ),
        Probe(
            G,
            "db load with another model's gate",
            load + ["--gate", "gate.json"],
            names=["model"],
            prep=lambda ws, a: (
                _copy_gate(ws, a, key="gate1"),
                _cohort(ws, a, lambda df: df),
                _db(ws, a["tree"]),
            ),
        ),  # fmt: skip
        Probe(
            G,
            "audit with another model's gate",
            audit,
            names=["model"],
            prep=lambda ws, a: _copy_gate(ws, a, key="gate1"),
        ),
        Probe(
            G,
            "a hand-edited alpha",
            gated,
            names=["content hash", "gate"],
            prep=lambda ws, a: _copy_gate(ws, a, lambda g: g.update(alpha=0.05)),
        ),
        Probe(
            G,
            "a hand-edited LTT threshold",
            gated,
            names=["content hash", "gate"],
            prep=lambda ws, a: _copy_gate(ws, a, lambda g: g["thresholds"].update({"lambda": 0.0})),
        ),
        Probe(
            G,
            "a hand-edited method",
            gated,
            names=["content hash", "gate"],
            prep=lambda ws, a: _copy_gate(ws, a, lambda g: g.update(method="lac")),
        ),
        Probe(
            G,
            "hand-edited calibration arrays",
            gated,
            names=["content hash", "gate"],
            prep=lambda ws, a: _copy_gate(
                ws,
                a,
                lambda g: g.update(
                    calibration={
                        k: [0.0] * len(v) if isinstance(v, list) else v
                        for k, v in g["calibration"].items()
                    }
                ),
            ),
        ),
        Probe(
            G,
            "a gate without its thresholds",
            gated,
            names=["thresholds"],
            prep=lambda ws, a: _copy_gate(ws, a, lambda g: g.pop("thresholds")),
        ),
        Probe(
            G,
            "a field from a newer version",
            gated,
            names=["9.0.0", "new_knob"],
            prep=lambda ws, a: _copy_gate(
                ws, a, lambda g: g.update(package_version="9.0.0", new_knob=1)
            ),
        ),
        Probe(
            G,
            "a gate file that is not JSON",
            gated,
            names=["gate.json"],
            prep=lambda ws, a: (ws / "gate.json").write_text('{"format": '),
        ),
        Probe(
            G,
            "alpha as text",
            gated,
            names=["alpha", "content hash"],
            prep=lambda ws, a: _copy_gate(ws, a, lambda g: g.update(alpha="0.1")),
        ),
        Probe(
            G,
            "a recalibrated gate (other alpha) is stored",
            None,
            refuse=False,
            py=_RECALIBRATED,
            argv=["{model}"],
            judge=_marker("STORED-BOTH"),
            prep=lambda ws, a: (_cohort(ws, a, lambda df: df), _db(ws, a["tree"])),
        ),
        # -- databases
        Probe(
            D,
            "a file that is not a database",
            verify,
            names=["database"],
            prep=lambda ws, a: (ws / "safer.db").write_bytes(b"not a database" * 50),
        ),
        Probe(
            D,
            "a database from a newer SAFER",
            verify,
            names=["newer", "9999"],
            prep=lambda ws, a: (
                _db(ws, a["tree"]),
                _sql(ws, "UPDATE alembic_version SET version_num='9999'"),
            ),
        ),
        Probe(D, "an empty database", verify, names=["safer db upgrade"]),
        Probe(
            D,
            "a table dropped by hand",
            verify,
            names=["database", "audit"],
            prep=lambda ws, a: (_db(ws, a["tree"]), _sql(ws, "DROP TABLE users")),
        ),
        Probe(
            D,
            "an unreachable PostgreSQL",
            ["audit-trail", "verify", "--db", "postgresql+psycopg2://u:secret@127.0.0.1:9/x"],
            names=["cannot reach"],
        ),
        Probe(
            D,
            "a malformed URL",
            ["audit-trail", "verify", "--db", "not a url"],
            names=["URL", "url"],
        ),
        # -- store identity
        Probe(
            S,
            "another cohort under the same stay ids",
            load,
            names=["stay", "source"],
            prep=lambda ws, a: (
                _loaded_db(ws, a),
                shutil.copy(a["other"], ws / "cohort.parquet"),
            ),
        ),
        Probe(
            S,
            "corrected data under the same ids",
            load,
            names=["--correct"],
            prep=lambda ws, a: (
                _loaded_db(ws, a),
                _cohort(ws, {"cohort": a["small"]}, _set("HR", 99.0, 0)),
            ),
        ),
        Probe(
            S,
            "corrected data loaded with --correct",
            load + ["--correct"],
            refuse=False,
            judge=_marker('"corrected": 1'),
            prep=lambda ws, a: (
                _loaded_db(ws, a),
                _cohort(ws, {"cohort": a["small"]}, _set("HR", 99.0, 0)),
            ),
        ),
        Probe(
            S,
            "the same cohort twice",
            load,
            refuse=False,
            judge=_marker('"stays": 0'),
            prep=lambda ws, a: (
                _loaded_db(ws, a),
                shutil.copy(a["small"], ws / "cohort.parquet"),
            ),
        ),
        # -- audit trail
        tampered_trail(
            "the newest non-review event deleted",
            False,
            "DELETE FROM audit_events WHERE seq=(SELECT MAX(seq) FROM audit_events)",
        ),
        tampered_trail("a trail without reviews emptied", False, "DELETE FROM audit_events"),
        tampered_trail(
            "a review's chosen action edited", True, "UPDATE reviews SET chosen_action = 12"
        ),
        tampered_trail("a review's reason edited", True, "UPDATE reviews SET reason = 'agreed'"),
        tampered_trail(
            "a user promoted to admin in SQL",
            False,
            "UPDATE users SET role='admin' WHERE username='ana'",
        ),
        tampered_trail("an event's actor edited", False, "UPDATE audit_events SET actor='mallory'"),
        tampered_trail(
            "a review event deleted", True, "DELETE FROM audit_events WHERE action='review'"
        ),
        Probe(
            T,
            "a role change through SAFER is audited",
            ["db", "set-role", "ana", "--role", "auditor", "--db", "sqlite:///{ws}/safer.db"],
            refuse=False,
            judge=_ok_if_zero,
            prep=lambda ws, a: _trail(a["tree"], ws, a, False),
        ),  # fmt: skip
        # -- security
        Probe(
            X,
            "the console's default address",
            py=_ADDRESS,
            refuse=False,
            judge=_marker("LOCAL-ONLY"),
            prep=lambda ws, a: _db(ws, a["tree"]) or shutil.move(ws / "safer.db", ws / "x.db"),
        ),
        Probe(
            X,
            "password 'password'",
            [
                "db",
                "add-user",
                "ana",
                "--role",
                "clinician",
                "--password",
                "password",
                "--db",
                "sqlite:///{ws}/safer.db",
            ],
            names=["password"],
            prep=lambda ws, a: _db(ws, a["tree"]),
        ),  # fmt: skip
        Probe(
            X,
            "a password of eight spaces",
            [
                "db",
                "add-user",
                "ana",
                "--role",
                "clinician",
                "--password",
                " " * 8,
                "--db",
                "sqlite:///{ws}/safer.db",
            ],
            names=["password"],
            prep=lambda ws, a: _db(ws, a["tree"]),
        ),  # fmt: skip
        Probe(
            X,
            "user ANA beside ana",
            [
                "db",
                "add-user",
                "ANA",
                "--role",
                "admin",
                "--password",
                "another-passphrase",
                "--db",
                "sqlite:///{ws}/safer.db",
            ],
            names=["ana"],
            prep=lambda ws, a: _trail(a["tree"], ws, a, False),
        ),  # fmt: skip
        Probe(
            X,
            "a Cyrillic look-alike name",
            [
                "db",
                "add-user",
                "\u0430na",
                "--role",
                "admin",
                "--password",
                "another-passphrase",
                "--db",
                "sqlite:///{ws}/safer.db",
            ],
            names=["CYRILLIC", "ana"],
            prep=lambda ws, a: _trail(a["tree"], ws, a, False),
        ),
        Probe(
            X,
            "a zero-width character in a name",
            [
                "db",
                "add-user",
                "an\u200ba",
                "--role",
                "admin",
                "--password",
                "another-passphrase",
                "--db",
                "sqlite:///{ws}/safer.db",
            ],
            names=["ZERO WIDTH", "ana"],
            prep=lambda ws, a: _trail(a["tree"], ws, a, False),
        ),
        Probe(
            X,
            "repeated wrong passwords, then the right one",
            py=_THROTTLE,
            refuse=False,
            judge=_marker("LOCKED"),
            prep=lambda ws, a: _trail(a["tree"], ws, a, False),
        ),
        Probe(
            X,
            "note text and hashes in a DEBUG log",
            py=_LOGS,
            refuse=False,
            judge=_marker("NOTHING-LEAKED"),
            prep=lambda ws, a: _trail(a["tree"], ws, a, False),
        ),  # fmt: skip
        # -- atomic writes
        Probe(
            A,
            "a model save that fails half-way",
            py=_FAILING_SAVE.format(what="model"),
            argv=["{model1}", "{gate1}"],
            keep=["model"],
            names=["No space"],
            prep=lambda ws, a: _copy_model(ws, a),
        ),
        Probe(
            A,
            "a gate save that fails half-way",
            py=_FAILING_SAVE.format(what="gate"),
            argv=["{model1}", "{gate1}"],
            keep=["gate.json"],
            names=["No space"],
            prep=lambda ws, a: _copy_gate(ws, a),
        ),
        Probe(
            A,
            "a report write that fails half-way",
            py=_FAILING_SAVE.format(what="report"),
            argv=["{model1}", "{gate1}"],
            keep=["report.html"],
            names=["No space"],
            prep=lambda ws, a: (ws / "report.html").write_text("<p>previous report</p>"),
        ),
        Probe(
            A,
            "a cohort write that fails half-way",
            py=_FAILING_SAVE.format(what="cohort"),
            argv=["{model1}", "{gate1}"],
            keep=["cohort.parquet"],
            names=["No space"],
            prep=lambda ws, a: shutil.copy(a["cohort"], ws / "cohort.parquet"),
        ),
    ]
    return out


_CONSOLE = """
import subprocess, sys
subprocess.call = lambda *a, **k: 0  # never start a server
from safer.cli import main
main(["console", "--db", "{db}"])
"""
_ADDRESS = """
import subprocess
seen = []
subprocess.call = lambda cmd, **k: seen.append(cmd) or 0
from safer.cli import main
try:
    main(["console", "--db", "sqlite:///x.db"])
except SystemExit:
    pass
cmd = seen[0]
local = "--server.address" in cmd and cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
print("LOCAL-ONLY" if local else "ALL-INTERFACES")
"""
_THROTTLE = """
from safer.store import connect, authenticate
S = connect("sqlite:///safer.db")
for _ in range(8):
    try:
        with S() as s:
            authenticate(s, "ana", "not-the-password")
    except Exception:
        pass
try:
    with S() as s:
        authenticate(s, "ana", "ana-password")
    print("SIGNED-IN after 8 failures")
except Exception as exc:
    print("LOCKED", type(exc).__name__)
"""
_LOGS = """
import io, logging
buf = io.StringIO()
logging.basicConfig(stream=buf, level=logging.DEBUG)
logging.getLogger("sqlalchemy.engine").setLevel(logging.DEBUG)
from safer.store import connect, authenticate, review_queue, decision_detail
S = connect("sqlite:///safer.db")
with S() as s:
    user = authenticate(s, "ana", "ana-password")
with S() as s:
    ids = [r["id"] for r in review_queue(s, user, limit=100)]
    notes = [n["text"] for i in ids for n in decision_detail(s, user, i)["notes"]]
log = buf.getvalue()
leaked = [t for t in notes if t and t in log] or ["$argon2"] * ("$argon2" in log)
print("NOTHING-LEAKED" if notes and not leaked else f"LEAKED {len(leaked)}")
"""
_FAILING_SAVE = """
import pathlib, torch, sys
what = "{what}"
def half(real):
    def write(*a, **k):
        real(*a, **k)
        raise OSError(28, "No space left on device")
    return write
def save():
    if what == "model":
        from safer.models import load_model
        model = load_model(sys.argv[1])  # another model, saved over this one's folder
        torch.save = half(torch.save)
        model.save("model")
    elif what == "gate":
        from safer.conformal import load_gate
        gate = load_gate(sys.argv[2])  # another gate, saved over this file
        pathlib.Path.write_text = half(pathlib.Path.write_text)
        gate.save("gate.json")
    elif what == "report":
        import numpy as np
        from safer.conformal import calibrate_gate
        from safer.conformal.report import audit, write_report
        rng = np.random.default_rng(0)
        p = rng.dirichlet(np.full(25, 0.3), size=200); y = p.argmax(axis=1)
        rep = audit(calibrate_gate("lac", p[:100], y[:100], alpha=0.2, model_hash="m"), p[100:],
                    y[100:], alphas=())
        pathlib.Path.write_text = half(pathlib.Path.write_text)
        write_report(rep, "report.html")
    else:
        import pandas as pd
        from safer.cohorts import write_cohort
        df = pd.read_parquet("cohort.parquet")
        pd.DataFrame.to_parquet = half(pd.DataFrame.to_parquet)
        write_cohort(df.iloc[:10], "cohort.parquet")
try:
    save()
except OSError as exc:  # what the user sees; the probe checks the files were kept
    print(f"refused: {{exc}}")
    sys.exit(2)
"""
_RECALIBRATED = """
import json, subprocess, sys
def safer(*args):
    out = subprocess.run([sys.executable, "-m", "safer", *args], capture_output=True, text=True)
    return out
db = "sqlite:///safer.db"
added = []
for alpha in ("0.3", "0.2"):
    safer("calibrate", "--model", sys.argv[1], "--cohort", "cohort.parquet", "--method", "ltt",
          "--alpha", alpha, "--out", "g.json")
    out = safer("db", "load", "--cohort", "cohort.parquet", "--model", sys.argv[1], "--gate",
                "g.json", "--db", db, "--json")
    try:
        added.append(json.loads(out.stdout)["recommendations"])
    except Exception:
        print(out.stdout[-300:], out.stderr); raise SystemExit(2)
print("STORED-BOTH" if added[1] > 0 else f"SECOND-DROPPED {added}")
"""


# ----------------------------------------------------------------------------- running
def make_artifacts(tree: Path, root: Path) -> dict:
    """Cohorts, two tiny models and their gates, made with ``tree``'s own CLI."""
    root.mkdir(parents=True, exist_ok=True)
    code, where = _run(tree, root, None, "import safer; print(safer.__file__)", {})
    if code != 0 or not where.strip().startswith(str(tree)):
        raise RuntimeError(f"`import safer` with PYTHONPATH={tree} gives {where.strip()!r}")
    art = {"tree": tree, "cohort": root / "cohort.parquet", "small": root / "small.parquet",
           "other": root / "other.parquet"}  # fmt: skip
    steps = [
        ["cohort", "simulate", "--stays", "80", "--seed", "11", "--out", art["cohort"]],
        ["cohort", "simulate", "--stays", "6", "--seed", "1", "--out", art["small"]],
        ["cohort", "simulate", "--stays", "6", "--seed", "2", "--out", art["other"]],
    ]
    for seed, key in ((0, "model"), (1, "model1")):
        art[key] = root / key
        art["gate" if seed == 0 else "gate1"] = root / f"gate{seed}.json"
        steps += [
            ["train", "--cohort", art["cohort"], "--variant", "safer-n", "--seed", str(seed),
             "--epochs", "1", "--finetune-epochs", "1", "--d-model", "8", "--threads", "1",
             "--out", art[key]],
            ["calibrate", "--model", art[key], "--cohort", art["cohort"], "--method", "ltt",
             "--alpha", "0.3", "--out", art["gate" if seed == 0 else "gate1"]],
        ]  # fmt: skip
    for args in steps:
        code, text = _run(tree, root, [str(a) for a in args], None, {})
        if code != 0:
            raise RuntimeError(f"{tree}: {' '.join(map(str, args))} failed:\n{text[-2000:]}")
    return art


def classify(probe: Probe, code: int, text: str, ws: Path, kept: dict) -> str:
    if "Traceback (most recent call last)" in text:
        return "traceback"
    if probe.keep and any(_digest(ws / k) != v for k, v in kept.items()) and code != 0:
        return "data lost"
    if probe.judge is not None and (code == 0 or not probe.refuse):
        return probe.judge(code, text, ws)
    if code == 0:
        return "silent wrong result" if probe.refuse else "correct"
    flat = " ".join(text.split())
    return "clear error" if any(n in flat for n in probe.names) else "unclear error"


def run_tree(tree: Path, work: Path, only: str | None = None) -> list[dict]:
    art = make_artifacts(tree, work / "artifacts")
    rows = []
    for i, probe in enumerate(probes(art)):
        if only and only not in probe.name:
            continue
        ws = work / f"probe{i:03d}"
        ws.mkdir()
        try:
            if probe.prep:
                probe.prep(ws, art)
        except Exception as exc:  # a setup the tree cannot do (e.g. a command it lacks)
            rows.append(
                {
                    "class": probe.cls,
                    "probe": probe.name,
                    "outcome": "clear error",
                    "exit": None,
                    "seconds": 0,
                    "message": f"setup: {exc}"[:300],
                }
            )
            continue
        kept = {k: _digest(ws / k) for k in probe.keep}
        fmt = {k: str(v) for k, v in art.items()} | {"ws": str(ws)}
        start = time.perf_counter()
        if probe.args is not None:
            code, text = _run(tree, ws, [a.format(**fmt) for a in probe.args], None, probe.env)
        else:
            argv = [a.format(**fmt) for a in probe.argv]
            code, text = _run_snippet(tree, ws, probe.py, argv, probe.env)
        seconds = time.perf_counter() - start
        outcome = classify(probe, code, text, ws, kept)
        rows.append({"class": probe.cls, "probe": probe.name, "outcome": outcome, "exit": code,
                     "seconds": round(seconds, 1),
                     "message": " ".join(text.split())[-300:]})  # fmt: skip
        print(
            f"{tree.name or tree}: {probe.cls} / {probe.name}: {outcome} ({code})",
            file=sys.stderr,
            flush=True,
        )
    return rows


def _run_snippet(tree: Path, ws: Path, code: str, argv: list[str], env: dict) -> tuple:
    full_env = {**os.environ, "PYTHONPATH": str(tree), **env}
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=ws, env=full_env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def version_time(tree: Path, repeats: int = 5) -> tuple[float, float]:
    """Median wall seconds and peak RSS (MB) of `safer --version` for ``tree``."""
    times, peaks = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "safer", "--version"],
            env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True,
            cwd=tree,  # not this script's folder: it would come first on sys.path
        )  # fmt: skip
        times.append(time.perf_counter() - start)
        peaks.append(int(done.stderr.strip().splitlines()[-1]) / 1024)
    times.sort(), peaks.sort()
    return times[len(times) // 2], peaks[len(peaks) // 2]


def markdown(before: list[dict], after: list[dict], names: tuple[str, str], timing) -> list[str]:
    lines = []
    classes = list(dict.fromkeys(r["class"] for r in after + before))
    for title, rows in ((names[0], before), (names[1], after)):
        lines += [f"### {title}", "", "| probe class | probes | " + " | ".join(OUTCOMES) + " |",
                  "|---|---:|" + "---:|" * len(OUTCOMES)]  # fmt: skip
        for cls in classes + ["all"]:
            picked = [r for r in rows if cls in ("all", r["class"])]
            cells = [str(sum(1 for r in picked if r["outcome"] == o)) for o in OUTCOMES]
            label = f"**{cls}**" if cls == "all" else cls
            lines.append(f"| {label} | {len(picked)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["### Every probe", "", f"| class | probe | {names[0]} | {names[1]} |",
              "|---|---|---|---|"]  # fmt: skip
    by_name = {(r["class"], r["probe"]): r["outcome"] for r in before}
    for r in after:
        lines.append(
            f"| {r['class']} | {r['probe']} | "
            f"{by_name.get((r['class'], r['probe']), 'n/a')} | {r['outcome']} |"
        )
    lines += ["", "### `safer --version`", "", "| tree | median seconds (5 runs) | peak RSS MB |",
              "|---|---:|---:|"]  # fmt: skip
    for title, (sec, mb) in zip(names, timing, strict=True):
        lines.append(f"| {title} | {sec:.2f} | {mb:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="Baseline source tree.")
    parser.add_argument("--after", type=Path, default=Path("."), help="Source tree to test.")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/reliability.md"))
    parser.add_argument("--json", type=Path, default=None, help="Also write every row here.")
    parser.add_argument("--only", default=None, help="Run the probes whose name has this.")
    parser.add_argument("--jobs", type=int, default=1, help="2: probe both trees at once.")
    parser.add_argument(
        "--rows-from",
        type=Path,
        default=None,
        help="With --only: take the other probes' rows from this --json file of an earlier run.",
    )
    args = parser.parse_args()
    trees = (args.before.resolve(), args.after.resolve())
    with (
        tempfile.TemporaryDirectory(prefix="safer-probes-") as tmp,
        ThreadPoolExecutor(max_workers=max(1, min(2, args.jobs))) as pool,
    ):
        runs = [pool.submit(run_tree, tree, Path(tmp) / f"tree{i}", args.only)
                for i, tree in enumerate(trees)]  # fmt: skip
        results = [run.result() for run in runs]
    if args.rows_from is not None:  # the probes re-run replace their rows in the earlier run
        earlier = json.loads(args.rows_from.read_text())
        for fresh, key in zip(results, ("before", "after"), strict=True):
            rerun = {(r["class"], r["probe"]) for r in fresh}
            kept = [r for r in earlier[key] if (r["class"], r["probe"]) not in rerun]
            fresh[:0] = kept
        order = {(r["class"], r["probe"]): i for i, r in enumerate(earlier["after"])}
        for fresh in results:
            fresh.sort(key=lambda r: order.get((r["class"], r["probe"]), len(order)))
    timing = [version_time(tree) for tree in trees]
    names = (f"before ({trees[0].name})", f"after ({trees[1].name})")
    if args.json:
        args.json.write_text(json.dumps({"before": results[0], "after": results[1],
                                         "version_seconds": timing}, indent=1))  # fmt: skip
    lines = [header("Reliability probes: the CLI, artifacts, store, trail and console",
                    "pandas", "sqlalchemy", "torch"), "",
        "Each probe runs one `safer` command (or a short snippet for what has no command) on",
        "input made to break it, against the baseline tree and this tree in the same run, on",
        "artifacts each tree made with its own CLI from the same simulated cohort. Outcomes are",
        "defined in `benchmarks/reliability_probes.py`.", "",
    ] + markdown(results[0], results[1], names, timing)  # fmt: skip
    write_page(args.out, lines)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
