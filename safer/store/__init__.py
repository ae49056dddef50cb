"""The SAFER store: cohorts, recommendations, reviews and the audit trail in one database.

SQLAlchemy 2.x ORM on ``sqlite:///safer.db`` by default or any URL in ``SAFER_DB_URL``
(PostgreSQL for a team); Alembic migrations (``safer db upgrade``); argon2 password hashes;
roles checked server-side; reviews that cannot overwrite each other; an append-only,
hash-chained audit trail (``safer audit-trail verify``).

Examples
--------
>>> import tempfile, os
>>> from safer.store import upgrade, connect, add_user, authenticate, head_revision
>>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "safer.db")
>>> upgrade(url) == head_revision()
True
>>> Session = connect(url)
>>> with Session() as s, s.begin():
...     _ = add_user(s, "ana", "correct horse", role="clinician")
>>> with Session() as s:
...     authenticate(s, "ana", "correct horse").role
'clinician'
"""

from safer.store.audit import TrailReport, append_event, list_events, verify_trail
from safer.store.db import (
    DEFAULT_URL,
    ENV_VAR,
    check_schema,
    connect,
    current_revision,
    database_url,
    head_revision,
    make_engine,
    read_only,
    safe_url,
    upgrade,
)
from safer.store.errors import (
    AccountLockedError,
    AuthenticationError,
    DatabaseUnavailableError,
    InvalidReviewError,
    PermissionDeniedError,
    ReviewConflictError,
    StaleSchemaError,
    StayConflictError,
    StoreError,
    WeakPasswordError,
)
from safer.store.loading import (
    LOW_CONFIDENCE,
    add_decisions,
    current_stay_keys,
    fingerprint,
    load_cohort,
    store_decisions,
)
from safer.store.reports import coverage_summary
from safer.store.reviews import (
    REASON_CODES,
    decision_detail,
    review_queue,
    stay_history,
    submit_review,
)
from safer.store.users import (
    PERMISSIONS,
    SignedInUser,
    add_user,
    authenticate,
    check_password,
    get_user,
    issue_session_token,
    normalise_username,
    read_session_token,
    require,
    session_minutes,
    set_active,
    set_role,
)

__all__ = [
    "AccountLockedError",
    "StayConflictError",
    "WeakPasswordError",
    "check_password",
    "current_stay_keys",
    "fingerprint",
    "normalise_username",
    "session_minutes",
    "issue_session_token",
    "read_session_token",
    "set_active",
    "set_role",
    "DEFAULT_URL",
    "ENV_VAR",
    "LOW_CONFIDENCE",
    "PERMISSIONS",
    "REASON_CODES",
    "AuthenticationError",
    "DatabaseUnavailableError",
    "InvalidReviewError",
    "PermissionDeniedError",
    "ReviewConflictError",
    "SignedInUser",
    "StaleSchemaError",
    "StoreError",
    "TrailReport",
    "add_decisions",
    "add_user",
    "append_event",
    "authenticate",
    "check_schema",
    "connect",
    "coverage_summary",
    "current_revision",
    "database_url",
    "decision_detail",
    "get_user",
    "head_revision",
    "list_events",
    "load_cohort",
    "make_engine",
    "read_only",
    "require",
    "review_queue",
    "safe_url",
    "stay_history",
    "store_decisions",
    "submit_review",
    "upgrade",
    "verify_trail",
]
