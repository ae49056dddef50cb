"""Produce docs/benchmarks/dtr.md: every model and baseline on the same splits.

A thin wrapper over ``safer benchmark``.

Default size (what the lead runs; every registered model + dqn, cql, bcq; 3 seeds)::

    python benchmarks/dtr.py

Scale up (the issue's comparison at a larger cohort and more rollout episodes)::

    python benchmarks/dtr.py --stays 5000 --episodes 5000 --rl-steps 20000

Smoke size::

    python benchmarks/dtr.py --stays 120 --seeds 0 --models safer-n,cql --episodes 100 \
        --epochs 2 --rl-steps 500

Every option of ``safer benchmark`` is accepted; this script only sets ``--out``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from safer.cli import main  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "dtr.md"

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--out" not in args:
        args += ["--out", os.path.relpath(OUT)]
    main(["benchmark", *args])
