"""Shared header for benchmark tables: the command, machine, date and package versions."""

from __future__ import annotations

import shlex
import sys

from safer.evaluation.benchmark import provenance


def header(title: str, *packages: str) -> str:
    """``# title`` and the provenance lines of the running benchmark script."""
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    return f"# {title}\n\n" + provenance(command, packages) + "\n"
