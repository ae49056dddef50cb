"""Shared pieces of benchmark tables: the provenance header and writing the page."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from safer.evaluation.benchmark import provenance


def header(title: str, *packages: str) -> str:
    """``# title`` and the provenance lines of the running benchmark script."""
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    return f"# {title}\n\n" + provenance(command, packages) + "\n"


def write_page(out: str | Path, lines: list[str], note: str = "") -> None:
    """Write ``lines`` (and ``note`` under them) to ``out`` (folders created) and print them."""
    if note:
        lines = [*lines, "", note]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
