"""Errors raised by the store; each says what to do next."""

from __future__ import annotations

from safer.errors import SaferError

__all__ = [
    "StoreError",
    "DatabaseUnavailableError",
    "StaleSchemaError",
    "AuthenticationError",
    "PermissionDeniedError",
    "ReviewConflictError",
    "InvalidReviewError",
    "StayConflictError",
    "AccountLockedError",
    "WeakPasswordError",
]


class StoreError(SaferError):
    """Base class of store errors."""


class DatabaseUnavailableError(StoreError, ConnectionError):
    """The database cannot be reached."""


class StaleSchemaError(StoreError, RuntimeError):
    """The database schema is missing or older (or newer) than this version of SAFER."""


class AuthenticationError(StoreError, PermissionError):
    """Wrong user name or password, an inactive account, or an expired session."""


class PermissionDeniedError(StoreError, PermissionError):
    """The signed-in user's role does not allow the action."""


class ReviewConflictError(StoreError, RuntimeError):
    """The recommendation was reviewed (or changed) by someone else first; nothing was written."""


class InvalidReviewError(StoreError, ValueError):
    """A review is malformed (unknown decision, missing reason on override, bad action)."""


class StayConflictError(StoreError, ValueError):
    """A stay id is already stored with other data (another patient, or uncorrected data)."""


class AccountLockedError(AuthenticationError):
    """Too many failed sign-ins for a user name: sign-in is refused until the lock ends."""


class WeakPasswordError(StoreError, ValueError):
    """A password fails the password policy (too short, too common, too simple)."""
