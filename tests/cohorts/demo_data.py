"""Where the real MIMIC-IV demo (as MEDS) lies: ``../shared/data`` beside the repository (as CI
lays it) or ``$SAFER_SHARED_DATA``; tests that read it skip with a reason where it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_DATA = os.environ.get("SAFER_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared/data"
DEMO = Path(_DATA) / "mimic-iv-demo-meds"
needs_demo = pytest.mark.skipif(
    not (DEMO / "events.parquet").is_file(),
    reason=f"the MIMIC-IV demo MEDS file is not at {DEMO} (a fresh clone has no ../shared)",
)
