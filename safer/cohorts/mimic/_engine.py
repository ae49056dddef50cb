"""The DuckDB connection every build runs in, and the per-stage progress bar."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable

from tqdm.auto import tqdm

from safer.cohorts.mimic.blocks import CohortBuild, ExtractionConfig, build_from_canonical
from safer.cohorts.mimic.canonical import SourceInfo, create_canonical

__all__ = ["Stages", "connect", "run_build"]

BUILD_STAGES = 5  # stays and onset, measurements, doses, SOFA and Sepsis-3, notes


class Stages:
    """A progress bar that advances once per named stage (on stderr; silent when off)."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self._bar = tqdm(total=total, desc=desc, disable=not enabled, unit="stage", leave=True)
        self._started = False

    def __call__(self, name: str) -> None:
        if self._started:
            self._bar.update(1)
        self._started = True
        self._bar.set_postfix_str(name)

    def close(self) -> None:
        if self._started:
            self._bar.update(1)
        self._bar.close()


def connect(config: ExtractionConfig, tmp: str):
    """An in-memory DuckDB connection that spills to the folder ``tmp``."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute(f"SET temp_directory = '{tmp}'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")  # stdout is for --json; ours is on stderr
    if config.memory_limit:
        con.execute(f"SET memory_limit = '{config.memory_limit}'")
    if config.threads:
        con.execute(f"SET threads = {int(config.threads)}")
    return con


def run_build(
    fill: Callable[[object, Callable[[str], None]], SourceInfo],
    fill_stages: int,
    desc: str,
    config: ExtractionConfig,
    progress: bool,
) -> CohortBuild:
    """Fill the canonical tables with ``fill(con, stage)`` and build the cohort over them."""
    config.check()
    tmp = tempfile.mkdtemp(prefix="safer-duckdb-")
    con = connect(config, tmp)
    stages = Stages(fill_stages + BUILD_STAGES, desc, progress)
    try:
        create_canonical(con)
        info = fill(con, stages)
        return build_from_canonical(con, info, config, stages)
    finally:
        stages.close()
        con.close()
        shutil.rmtree(tmp, ignore_errors=True)
