"""Users, roles, passwords (argon2) and what each role may do.

Permissions are checked here, server-side, by every store call that acts for a user; the console
only hides what a role cannot use.

Examples
--------
>>> # with Session() as s, s.begin():
>>> #     add_user(s, "ana", "a long passphrase", role="clinician")
>>> # with Session() as s:
>>> #     user = authenticate(s, "ana", "a long passphrase")
>>> #     require(user, "review")
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from safer.store.audit import append_event
from safer.store.errors import AuthenticationError, PermissionDeniedError, StoreError
from safer.store.schema import ROLES, User

__all__ = ["PERMISSIONS", "SignedInUser", "add_user", "authenticate", "require", "get_user"]

MIN_PASSWORD = 8
PERMISSIONS: dict[str, frozenset[str]] = {
    "view_queue": frozenset({"clinician", "admin"}),
    "review": frozenset({"clinician"}),
    "view_audit": frozenset({"auditor", "admin"}),
    "export_audit": frozenset({"auditor", "admin"}),
    "verify_audit": frozenset({"auditor", "admin"}),
    "manage_users": frozenset({"admin"}),
}


@dataclass(frozen=True)
class SignedInUser:
    """The identity a session acts as (no password hash)."""

    id: int
    username: str
    role: str


def _hasher() -> PasswordHasher:
    return PasswordHasher()


def add_user(
    session: Session, username: str, password: str, *, role: str, actor: str = "system"
) -> SignedInUser:
    """Create a user with an argon2 password hash; audited. Commit the session to keep it."""
    if role not in ROLES:
        raise StoreError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    username = username.strip()
    if not username or len(username) > 64:
        raise StoreError("user name must be 1-64 characters")
    if len(password) < MIN_PASSWORD:
        raise StoreError(f"password must have at least {MIN_PASSWORD} characters")
    if session.execute(sa.select(User.id).where(User.username == username)).first():
        raise StoreError(f"user {username!r} already exists; pick another name")
    user = User(username=username, password_hash=_hasher().hash(password), role=role)
    session.add(user)
    session.flush()
    append_event(
        session,
        actor=actor,
        action="add_user",
        entity="user",
        entity_id=user.id,
        after={"username": username, "role": role},
    )
    return SignedInUser(user.id, user.username, user.role)


def authenticate(session: Session, username: str, password: str) -> SignedInUser:
    """Check a user name and password; raise :class:`AuthenticationError` if wrong.

    The message is the same for an unknown user and a wrong password.
    """
    user = session.execute(sa.select(User).where(User.username == username.strip())).scalar()
    refused = AuthenticationError("wrong user name or password; try again")
    if user is None or not user.active:
        _hasher().hash(password)  # same cost either way, so timing does not reveal users
        raise refused
    try:
        _hasher().verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise refused from None
    return SignedInUser(user.id, user.username, user.role)


def get_user(session: Session, user_id: int) -> SignedInUser:
    """Re-read a signed-in user from the database (role changes and deactivation apply at once)."""
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise AuthenticationError("this account no longer exists or was deactivated; sign in again")
    return SignedInUser(user.id, user.username, user.role)


def require(user: SignedInUser | None, permission: str) -> None:
    """Raise :class:`PermissionDeniedError` unless ``user``'s role grants ``permission``."""
    if permission not in PERMISSIONS:
        raise StoreError(f"unknown permission {permission!r}; known: {', '.join(PERMISSIONS)}")
    if user is None:
        raise AuthenticationError("not signed in; sign in first")
    if user.role not in PERMISSIONS[permission]:
        allowed = ", ".join(sorted(PERMISSIONS[permission]))
        raise PermissionDeniedError(
            f"{user.username} ({user.role}) may not {permission.replace('_', ' ')}; "
            f"that needs the role {allowed}"
        )
