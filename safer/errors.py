"""Exceptions raised by SAFER.

Every error a user can trigger derives from :class:`SaferError`, so the CLI can print its message
without a traceback. Messages say what is wrong *and* what to do next.
"""

from __future__ import annotations

__all__ = ["SaferError", "CohortValidationError", "CohortReadError", "NotFittedError"]


class SaferError(Exception):
    """Base class of every error SAFER raises on bad input or bad usage."""


class CohortValidationError(SaferError, ValueError):
    """A cohort table breaks the schema; ``problems`` lists every violation found."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        where = f" {source}" if source else ""
        super().__init__(
            f"cohort table{where} is invalid ({len(self.problems)} problem"
            f"{'s' if len(self.problems) != 1 else ''}):\n{lines}\n"
            "See safer.cohorts.schema (FEATURES, STATIC, describe_schema()) "
            "for the expected layout."
        )


class CohortReadError(SaferError, OSError):
    """A cohort file could not be read (missing, corrupt or of an unknown format)."""


class NotFittedError(SaferError, RuntimeError):
    """A learnable object was used before ``fit``."""
