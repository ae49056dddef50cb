"""Shared pieces of the benchmark scripts: the provenance header of this script's command line
and writing the page. The provenance itself is the library's (:mod:`safer._provenance`)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from safer import _provenance


def command_line() -> str:
    """The command that is running this script, as a user would type it."""
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def header(title: str, *packages: str) -> str:
    """``# title`` and the provenance lines of the running benchmark script."""
    return _provenance.header(title, command_line(), *packages)


def write_page(out: str | Path, lines: list[str], note: str = "") -> None:
    """Write ``lines`` (and ``note`` under them) to ``out`` (folders created) and print them."""
    if note:
        lines = [*lines, "", note]
    _provenance.write_page(out, "\n".join(lines))
    print("\n".join(lines))


def git_commit(root: str | Path | None = None) -> str:
    """The checked-out commit (short hash, ``+dirty`` with uncommitted changes), or ``unknown``."""
    import subprocess

    cwd = Path(root) if root else Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=cwd,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty.strip() else "")


def save_run(folder: str | Path, name: str, record: dict) -> Path:
    """Write one run's raw results as ``folder/name.json`` (atomically; folders created), with
    the command, machine, date, versions and commit it came from under ``provenance``."""
    import datetime as dt
    import json

    from safer._atomic import write_text

    record = {
        "provenance": {
            "command": command_line(),
            "machine": _provenance.machine(),
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "versions": _provenance.versions("safer-icu", "sqlalchemy"),
            "commit": git_commit(),
        },
        **record,
    }
    return write_text(Path(folder) / f"{name}.json", json.dumps(record, indent=1) + "\n")


def load_runs(folder: str | Path) -> list[dict]:
    """Every run saved in ``folder`` by :func:`save_run`, oldest first (by file name)."""
    import json

    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))]
