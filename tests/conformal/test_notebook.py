"""The auditor's walk-through notebook runs top to bottom (outputs are stripped in git)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "coverage_audit.ipynb"


def test_notebook_is_stripped_and_runs():
    raw = json.loads(NOTEBOOK.read_text())
    assert all(not cell.get("outputs") for cell in raw["cells"] if cell["cell_type"] == "code")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parents[1])}},
    ).execute()
    assert "coverage" in str(nb.cells[3].outputs)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
