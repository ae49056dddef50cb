"""Shared header for benchmark tables: the command, machine, date and package versions."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){mem}, {platform.system()} {platform.release()}"


def versions(*packages: str) -> str:
    out = [f"python {platform.python_version()}"]
    for name in packages:
        try:
            out.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name} (not installed)")
    return ", ".join(out)


def header(title: str, *packages: str) -> str:
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    return (
        f"# {title}\n\n"
        f"- command: `{command}`\n"
        f"- machine: {machine()}\n"
        f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}\n"
        f"- versions: {versions('safer-icu', *packages)}\n\n"
    )
