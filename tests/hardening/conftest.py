"""Real artifacts for the hardening tests and the fuzz suite: a cohort file, a tiny trained
model (BC-MLP, no notes), its LAC gate and the gate of a second model, built once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from safer.cli import main


@pytest.fixture(scope="session")
def artifacts(small_cohort, tmp_path_factory) -> dict[str, Path]:
    """Made with the CLI, as a user would (and as every SAFER version since 0.1.0 can)."""
    from safer.cohorts import write_cohort

    out = tmp_path_factory.mktemp("artifacts")
    stays = np.sort(small_cohort["stay_id"].unique())[:80]
    cohort = small_cohort[small_cohort["stay_id"].isin(stays)].reset_index(drop=True)
    paths = {"cohort": write_cohort(cohort, out / "cohort.parquet")}
    for seed in (0, 1):
        paths[f"model{seed}"], paths[f"gate{seed}"] = out / f"model{seed}", out / f"gate{seed}.json"
        for args in (
            ["train", "--cohort", paths["cohort"], "--variant", "safer-n", "--seed", seed,
             "--epochs", 1, "--finetune-epochs", 1, "--d-model", 8, "--threads", 1,
             "--out", paths[f"model{seed}"], "--json"],
            ["calibrate", "--model", paths[f"model{seed}"], "--cohort", paths["cohort"],
             "--method", "ltt", "--alpha", 0.3, "--out", paths[f"gate{seed}"], "--json"],
        ):  # fmt: skip
            with pytest.raises(SystemExit) as done:
                main([str(a) for a in args])
            assert done.value.code in (0, None), args
    return paths


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``safer ARGS`` in this process: (exit code, stdout, stderr). An exception that
    escapes :func:`safer.cli.main` (a traceback for the user) fails the calling test."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err
