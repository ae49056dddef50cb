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
