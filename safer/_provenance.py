"""Where a number came from: the command, machine, date and package versions of a run.

Every benchmark table in ``docs/benchmarks/`` opens with these lines. The library never reads
``sys.argv``: the caller passes the command it was run with (the ``safer`` CLI builds it from its
own arguments, a script in ``benchmarks/`` from its command line).

Examples
--------
>>> print(header("My table", "safer benchmark --stays 60").splitlines()[0])
# My table
>>> "- machine:" in provenance("safer benchmark")
True

A password in a database URL on the command line is never written:

>>> hide_passwords("store_load.py --db postgresql+psycopg2://me:s3cret@127.0.0.1:5432/db")
'store_load.py --db postgresql+psycopg2://me:***@127.0.0.1:5432/db'
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from importlib import metadata
from pathlib import Path

__all__ = [
    "DEFAULT_PACKAGES",
    "header",
    "hide_passwords",
    "provenance",
    "machine",
    "versions",
    "write_page",
]

#: Packages whose versions a provenance block names unless told otherwise.
DEFAULT_PACKAGES = ("torch", "d3rlpy", "mapie", "numpy")


#: ``scheme://user:password@`` in a URL: what :func:`hide_passwords` masks.
_URL_PASSWORD = re.compile(r"(\w[\w+.-]*://[^:/@\s]*:)[^\s/]*@")


def hide_passwords(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` URL in it masked
    as ``***`` -- for a command line that is written to a page, a file or a log."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def provenance(command: str = "", packages: tuple[str, ...] = DEFAULT_PACKAGES) -> str:
    """Markdown list lines: the command (passwords masked), machine, date and versions
    (``safer-icu`` first)."""
    return (
        f"- command: `{hide_passwords(command)}`\n"
        f"- machine: {machine()}\n"
        f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}\n"
        f"- versions: {versions('safer-icu', *packages)}\n"
    )


def header(title: str, command: str, *packages: str) -> str:
    """``# title``, a blank line and the :func:`provenance` lines of ``command``."""
    return f"# {title}\n\n" + provenance(command, packages or DEFAULT_PACKAGES) + "\n"


def machine() -> str:
    """Cores, CPU model, RAM and OS of this machine."""
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
    """``python X, pkg Y, ...`` for the installed distributions named."""
    out = [f"python {platform.python_version()}"]
    for name in packages:
        try:
            out.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name} (not installed)")
    return ", ".join(out)


def write_page(path: str | Path, text: str) -> Path:
    """Write a Markdown page atomically (folders created); returns the path."""
    from safer._atomic import write_text

    return write_text(path, text if text.endswith("\n") else text + "\n")
