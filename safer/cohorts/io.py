"""Read and write cohort tables (parquet or CSV, chosen by the file extension)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from safer._atomic import atomic_file
from safer.cohorts.schema import validate
from safer.errors import CohortReadError, CohortValidationError

__all__ = ["read_cohort", "write_cohort", "SUFFIXES"]

SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz")
_DATETIMES = ["charttime", "note_time"]


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    raise CohortReadError(f"{path}: unknown cohort file type; use one of {', '.join(SUFFIXES)}")


def read_cohort(path: str | Path, *, check: bool = True) -> pd.DataFrame:
    """Read a cohort table and (by default) validate it.

    Time-zone-aware times (parquet columns with a zone, CSV text with offsets) are converted to
    naive UTC, the schema's convention.

    Raises
    ------
    CohortReadError
        The file is missing, unreadable, corrupt or of an unknown type.
    CohortValidationError
        The table breaks the schema (every problem listed).
    """
    path = Path(path)
    kind = _kind(path)
    if not path.is_file():
        raise CohortReadError(f"{path}: no such file; simulate one with `safer cohort simulate`")
    try:
        if kind == "parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, keep_default_na=True)
            for col in _DATETIMES:
                if col in df.columns:  # text with or without offsets -> naive UTC
                    df[col] = pd.to_datetime(df[col], errors="coerce", utc=True)
            if "note" in df.columns:
                df["note"] = df["note"].fillna("").astype(object)
        for col in _DATETIMES:
            if col in df.columns and getattr(getattr(df[col], "dt", None), "tz", None):
                df[col] = df[col].dt.tz_convert("UTC").dt.tz_localize(None)
    except Exception as exc:  # pyarrow / parser errors have many types
        raise CohortReadError(
            f"{path}: could not read it as {kind} ({type(exc).__name__}: {exc}); "
            "is the file complete and really a cohort table?"
        ) from exc
    if not check:
        return df
    try:
        return validate(df)
    except CohortValidationError as exc:
        raise CohortValidationError(exc.problems, source=str(path)) from None


def write_cohort(df: pd.DataFrame, path: str | Path) -> Path:
    """Validate and write a cohort table; parent folders are created."""
    path = Path(path)
    kind = _kind(path)
    validate(df)
    with atomic_file(path) as tmp:  # never a half-written cohort under the real name
        if kind == "parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False, compression="gzip" if path.name.endswith(".gz") else None)
    return path
