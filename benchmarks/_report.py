"""Shared pieces of the benchmark scripts: the provenance header of this script's command line,
writing the page, ``mean ± sd`` over seeds, the paired bootstrap interval of a mean
difference, and the command-line options several scripts share (``--split``). The
provenance itself is the library's (:mod:`safer._provenance`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from safer import _provenance
from safer.cohorts import DEFAULT_FRACTIONS


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that is running this script (or ``argv``), as a user would type it, with
    any database password masked (:func:`safer._provenance.hide_passwords`).

    >>> command_line(["store_load.py", "--db", "postgresql://me:pw@127.0.0.1/db"])
    'python store_load.py --db postgresql://me:***@127.0.0.1/db'
    """
    argv = sys.argv if argv is None else argv
    return _provenance.hide_passwords("python " + " ".join(shlex.quote(a) for a in argv))


def header(title: str, *packages: str) -> str:
    """``# title`` and the provenance lines of the running benchmark script."""
    return _provenance.header(title, command_line(), *packages)


def write_page(out: str | Path, lines: list[str], note: str = "") -> None:
    """Write ``lines`` (and ``note`` under them) to ``out`` (folders created) and print them."""
    if note:
        lines = [*lines, "", note]
    _provenance.write_page(out, "\n".join(lines))
    print("\n".join(lines))


def bootstrap_mean(diff, n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """The mean of paired differences ``diff`` (one per user, say) and its 95 % percentile
    bootstrap interval over ``n`` resamples: ``(mean, low, high)``.

    >>> import numpy as np
    >>> mean, low, high = bootstrap_mean(np.array([0.1, 0.3, 0.2, 0.4]))
    >>> round(mean, 2), low <= mean <= high
    (0.25, True)
    """
    import numpy as np

    diff = np.asarray(diff, float)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (n, len(diff)))].mean(1)
    return float(diff.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def mean_sd(values, spec: str = ".3f") -> str:
    """``mean ± sd`` of a metric over seeds (sample sd), each formatted with ``spec``; one value
    alone as itself.

    >>> mean_sd([0.1, 0.2, 0.3]), mean_sd([0.25], ".2f")
    ('0.200 ± 0.100', '0.25')
    """
    import numpy as np

    values = list(values)
    if len(values) == 1:
        return format(values[0], spec)
    return f"{np.mean(values):{spec}} ± {np.std(values, ddof=1):{spec}}"


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


def add_split_argument(parser: argparse.ArgumentParser, note: str = "") -> None:
    """``--split TRAIN CAL TEST``: the stay fractions of the train (the model and the gate's
    candidate), calibration (the safety test) and test splits, default
    :data:`safer.cohorts.DEFAULT_FRACTIONS`; ``note`` ends the help (which part uses them)."""
    parser.add_argument(
        "--split", type=float, nargs=3, default=list(DEFAULT_FRACTIONS),
        metavar=("TRAIN", "CAL", "TEST"),
        help="Stay fractions of the train (model, gate's candidate), calibration (safety test) "
        "and test splits" + (f" {note}" if note else "") + ".",
    )  # fmt: skip


def split_words(fractions: Sequence[float]) -> str:
    """Stay fractions as a page writes them: ``60/20/20``.

    >>> split_words([0.6, 0.35, 0.05])
    '60/35/5'
    """
    return "/".join(f"{100 * f:g}" for f in fractions)
