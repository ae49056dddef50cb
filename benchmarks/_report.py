"""Shared header for benchmark tables: the command, machine, date and package versions."""

from __future__ import annotations

import datetime as dt
import shlex
import sys

from safer.evaluation.benchmark import machine, versions  # noqa: F401 (re-exported)


def header(title: str, *packages: str) -> str:
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    return (
        f"# {title}\n\n"
        f"- command: `{command}`\n"
        f"- machine: {machine()}\n"
        f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}\n"
        f"- versions: {versions('safer-icu', *packages)}\n\n"
    )
