"""Helpers shared by the command modules: output and common options."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from safer._json import to_plain

err_console = Console(stderr=True)
out_console = Console()


def print_json(payload: Any) -> None:
    """Print JSON to stdout and nothing else (progress and messages go to stderr)."""
    print(json.dumps(to_plain(payload, paths_as_text=True), indent=2))


def print_table(title: str, rows: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for key, value in rows.items():
        table.add_row(str(key), _fmt(value))
    out_console.print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
