"""Users, roles, passwords (argon2), sign-in throttling and what each role may do.

Permissions are checked here, server-side, by every store call that acts for a user; the console
only hides what a role cannot use.

- User names are normalised (Unicode NFKC, then case-folded) and may hold only ``a-z``, ``0-9``,
  ``.``, ``_`` and ``-``; a name that looks like an existing one (``ana`` / ``ANA`` / ``аna``
  with a Cyrillic ``а`` / ``an0`` ...) is refused.
- Passwords: at least :data:`MIN_PASSWORD` characters, at least :data:`MIN_DISTINCT` different
  characters, not the user name, not a common password (a bundled list, compared case-folded
  and without trailing digits and symbols).
- Sign-in: after :data:`MAX_FAILURES` failed attempts for a user name within
  :data:`LOCK_MINUTES` minutes, sign-in for that name is refused for :data:`LOCK_MINUTES`
  minutes (known and unknown names alike, so a lock reveals nothing); each lock is an audit
  event.
- Role changes and deactivations are audit events (:func:`set_role`, :func:`set_active`).

Examples
--------
>>> normalise_username("  ＡNA ")
'ana'
>>> check_password("password", "ana")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
safer.store.errors.WeakPasswordError: this password is one of the most common passwords; ...
>>> # with Session() as s, s.begin():
>>> #     add_user(s, "ana", "a long passphrase", role="clinician")
>>> # with Session() as s:
>>> #     user = authenticate(s, "ana", "a long passphrase")
>>> #     require(user, "review")
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from safer.store.audit import append_event
from safer.store.errors import (
    AccountLockedError,
    AuthenticationError,
    PermissionDeniedError,
    StoreError,
    WeakPasswordError,
)
from safer.store.schema import ROLES, SignInFailure, User, utcnow

__all__ = [
    "PERMISSIONS",
    "SignedInUser",
    "add_user",
    "authenticate",
    "check_password",
    "get_user",
    "normalise_username",
    "require",
    "session_minutes",
    "issue_session_token",
    "read_session_token",
    "SESSION_SECRET_ENV",
    "set_active",
    "set_role",
]

MIN_PASSWORD = 8
MIN_DISTINCT = 5
MAX_FAILURES = 5
LOCK_MINUTES = 15
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# look-alikes among the allowed characters, folded for the "looks like an existing user" check
_SKELETON = (("rn", "m"), ("vv", "w"), ("0", "o"), ("1", "l"), ("i", "l"), ("5", "s"),
             ("_", "-"), (".", "-"))  # fmt: skip
PERMISSIONS: dict[str, frozenset[str]] = {
    "view_queue": frozenset({"clinician", "admin"}),
    # one decision, read-only (an auditor opens it from the trail)
    "view_decision": frozenset({"clinician", "auditor", "admin"}),
    "review": frozenset({"clinician"}),
    "view_audit": frozenset({"auditor", "admin"}),
    "export_audit": frozenset({"auditor", "admin"}),
    "verify_audit": frozenset({"auditor", "admin"}),
    "manage_users": frozenset({"admin"}),
}


@dataclass(frozen=True)
class SignedInUser:
    """The identity a session acts as (no password hash).

    Examples
    --------
    >>> import os, tempfile
    >>> from safer.store import connect, upgrade
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "safer.db"); _ = upgrade(url)
    >>> Session = connect(url)
    >>> with Session() as s, s.begin():
    ...     _ = add_user(s, "ana", "correct horse", role="auditor")
    >>> with Session() as s:
    ...     user = authenticate(s, "ana", "correct horse")
    >>> user.username, user.role
    ('ana', 'auditor')
    >>> require(user, "view_audit"); require(user, "review")
    Traceback (most recent call last):
    ...
    safer.store.errors.PermissionDeniedError: ...
    """

    id: int
    username: str
    role: str


def _hasher() -> PasswordHasher:
    return PasswordHasher()


def normalise_username(username: str) -> str:
    """The canonical form of a user name (NFKC, case-folded, trimmed); refuses other characters.

    Raises :class:`StoreError` naming the first character that is not allowed.
    """
    name = unicodedata.normalize("NFKC", str(username)).casefold().strip()
    if _NAME.match(name):
        return name
    if not name or len(name) > 64:
        raise StoreError("a user name must have 1-64 characters")
    bad = next((c for c in name if not re.match(r"[a-z0-9._-]", c)), name[0])
    what = unicodedata.name(bad, "unnamed character")
    raise StoreError(
        f"user names may hold only a-z, 0-9, '.', '_' and '-' and start with a letter or digit; "
        f"{username!r} has {bad!r} (U+{ord(bad):04X} {what})"
    )


def _skeleton(name: str) -> str:
    for a, b in _SKELETON:
        name = name.replace(a, b)
    return name


@cache
def _common_passwords() -> frozenset[str]:
    text = (Path(__file__).parent / "common_passwords.txt").read_text(encoding="utf-8")
    words = (w.strip().casefold() for w in text.splitlines())
    return frozenset(w for w in words if w and not w.startswith("#"))


def check_password(password: str, username: str = "") -> None:
    """Raise :class:`WeakPasswordError` unless ``password`` meets the policy (module docstring)."""
    if len(password) < MIN_PASSWORD:
        raise WeakPasswordError(f"password must have at least {MIN_PASSWORD} characters")
    if len(set(password)) < MIN_DISTINCT or not password.strip():
        raise WeakPasswordError(
            f"password must use at least {MIN_DISTINCT} different characters (not only spaces "
            "or one repeated character); a few unrelated words make a good one"
        )
    folded = password.casefold()
    if username and folded.strip() == normalise_username(username):
        raise WeakPasswordError("password must not be the user name")
    stem = re.sub(r"[\d\W_]+$", "", folded)
    if folded in _common_passwords() or stem in _common_passwords():
        raise WeakPasswordError(
            "this password is one of the most common passwords; choose a less guessable one "
            "(a few unrelated words make a good one)"
        )


def add_user(
    session: Session, username: str, password: str, *, role: str, actor: str = "system"
) -> SignedInUser:
    """Create a user with an argon2 password hash; audited. Commit the session to keep it.

    The name is normalised (:func:`normalise_username`) and refused when it is, or looks like,
    an existing user's; the password must meet :func:`check_password`.
    """
    if role not in ROLES:
        raise StoreError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    username = normalise_username(username)
    check_password(password, username)
    for (existing,) in session.execute(sa.select(User.username)):
        if existing == username:
            raise StoreError(f"user {username!r} already exists; pick another name")
        if _skeleton(existing.casefold()) == _skeleton(username):
            raise StoreError(
                f"user name {username!r} looks like the existing user {existing!r}; pick a name "
                "that cannot be mistaken for it"
            )
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

    The message is the same for an unknown user and a wrong password. After
    :data:`MAX_FAILURES` failures within :data:`LOCK_MINUTES` minutes the name is locked for
    :data:`LOCK_MINUTES` minutes (:class:`AccountLockedError`, audited). Runs in its own
    transaction on ``session`` (an open one is rolled back first) and commits the failure count.
    """
    refused = AuthenticationError("wrong user name or password; try again")
    try:
        name = normalise_username(username)
    except StoreError:
        _hasher().hash(password)  # same cost as a real check
        raise refused from None
    if session.in_transaction():
        session.rollback()
    with session.begin():
        now = utcnow()
        failure = session.get(SignInFailure, name)
        if failure is not None and failure.locked_until is not None and failure.locked_until > now:
            minutes = max(1, round((failure.locked_until - now).total_seconds() / 60))
            locked = AccountLockedError(
                f"too many failed sign-ins for {name!r}: sign-in is locked for {minutes} more "
                "minute(s); try again later or ask an administrator"
            )
        else:
            locked = None
            user = session.execute(sa.select(User).where(User.username == name)).scalar()
            if user is None or not user.active:
                _hasher().hash(password)  # same cost either way, so timing does not reveal users
                ok = False
            else:
                try:
                    ok = _hasher().verify(user.password_hash, password)
                except (VerificationError, InvalidHashError):
                    ok = False
            if ok:
                if failure is not None:
                    session.delete(failure)
                return SignedInUser(user.id, user.username, user.role)
            _record_failure(session, name, failure, now)
    raise locked or refused


def _record_failure(session: Session, name: str, failure, now) -> None:
    window = timedelta(minutes=LOCK_MINUTES)
    if failure is None:
        failure = SignInFailure(username=name, failures=0, first_failure_at=now)
        session.add(failure)
    elif failure.locked_until is not None or now - failure.first_failure_at > window:
        failure.failures, failure.first_failure_at, failure.locked_until = 0, now, None
    failure.failures += 1
    if failure.failures >= MAX_FAILURES:
        failure.locked_until = now + window
        append_event(
            session,
            actor=name,
            action="lockout",
            entity="user_name",
            entity_id=name,
            after={"failures": failure.failures, "locked_until": failure.locked_until},
        )


def set_role(session: Session, username: str, role: str, *, actor: str) -> SignedInUser:
    """Change a user's role; audited (before and after). Commit the session to keep it."""
    if role not in ROLES:
        raise StoreError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    user = _user_by_name(session, username)
    before = user.role
    user.role = role
    session.flush()
    append_event(session, actor=actor, action="set_role", entity="user", entity_id=user.id,
                 before={"role": before}, after={"role": role})  # fmt: skip
    return SignedInUser(user.id, user.username, user.role)


def set_active(session: Session, username: str, active: bool, *, actor: str) -> SignedInUser:
    """(De)activate a user; audited. A deactivated user cannot sign in; nothing is deleted."""
    user = _user_by_name(session, username)
    before = user.active
    user.active = bool(active)
    session.flush()
    append_event(session, actor=actor, action="set_active", entity="user", entity_id=user.id,
                 before={"active": before}, after={"active": bool(active)})  # fmt: skip
    return SignedInUser(user.id, user.username, user.role)


SESSION_MINUTES_ENV = "SAFER_SESSION_MINUTES"


def session_minutes() -> float:
    """Minutes of inactivity after which a console session expires (``$SAFER_SESSION_MINUTES``,
    default 30); refuses a value that is not a positive number.

    >>> import os; os.environ.pop(SESSION_MINUTES_ENV, None) and None
    >>> session_minutes()
    30.0
    """
    import math
    import os

    raw = os.environ.get(SESSION_MINUTES_ENV, "30")
    try:
        minutes = float(raw)
    except ValueError:
        minutes = math.nan
    if not (math.isfinite(minutes) and 0 < minutes <= 24 * 60):
        raise StoreError(
            f"{SESSION_MINUTES_ENV}={raw!r} is not a number of minutes between 0 and 1440; "
            "set it to e.g. 30, or unset it for the default (30)"
        )
    return minutes


def _user_by_name(session: Session, username: str) -> User:
    name = normalise_username(username)
    user = session.execute(sa.select(User).where(User.username == name)).scalar()
    if user is None:
        raise StoreError(f"no user {name!r}; list users in the console or add one first")
    return user


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


SESSION_SECRET_ENV = "SAFER_SESSION_SECRET"


def issue_session_token(user: SignedInUser, secret: bytes, *, nonce: str | None = None,
                        now: float | None = None) -> str:  # fmt: skip
    """A signed token naming ``user`` and the time it was issued: ``ID.ISSUED.NONCE.SIGNATURE``.

    The console keeps it in the page's address (``?s=...``) so that a reload or a deep link
    finds the session again; it holds no password and no role (the user is re-read from the
    database on every use). ``nonce`` names the sign-in, so signing out revokes every token of
    that sign-in (:func:`read_session_token` ``revoked``). Re-issue it on activity: a token
    older than :func:`session_minutes` is refused.

    >>> t = issue_session_token(SignedInUser(1, "ana", "clinician"), b"k" * 32, nonce="n", now=0)
    >>> t.split(".")[:3]
    ['1', '0', 'n']
    """
    import hashlib
    import hmac
    import secrets
    import time

    nonce = nonce or secrets.token_hex(8)
    payload = f"{int(user.id)}.{int(time.time() if now is None else now)}.{nonce}"
    signature = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{signature}"


def read_session_token(session: Session, token: str, secret: bytes, *, revoked=(),
                       now: float | None = None) -> tuple[SignedInUser, str]:  # fmt: skip
    """The user a token from :func:`issue_session_token` names, and its nonce.

    Raises :class:`AuthenticationError` for a token that is malformed, not signed with
    ``secret`` (e.g. issued before the console restarted), older than :func:`session_minutes`,
    revoked (signed out), or whose user no longer exists or was deactivated.
    """
    import hashlib
    import hmac
    import time

    parts = str(token).split(".")
    if len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit():
        raise AuthenticationError("this sign-in link is not valid; sign in again")
    payload = ".".join(parts[:3])
    expected = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts[3]):
        raise AuthenticationError("this sign-in link is not valid (the console may have "
                                  "restarted); sign in again")  # fmt: skip
    now = time.time() if now is None else now
    if now - int(parts[1]) > 60 * session_minutes() or parts[2] in revoked:
        raise AuthenticationError("Your session expired; sign in again.")
    return get_user(session, int(parts[0])), parts[2]
