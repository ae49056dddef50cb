"""Console session state, sign-in, expiry and error display, in one place for every page."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from safer.errors import SaferError
from safer.store import (
    AuthenticationError,
    SignedInUser,
    check_schema,
    database_url,
    get_user,
    make_engine,
    require,
    session_minutes,
)

DEFAULTS = {
    "user": None,  # SignedInUser or None
    "last_active": 0.0,
    "flash": "",
    "rec_id": None,
    # what-if page: controls as tuples (replaced, never mutated) and the last edit's result
    "whatif_rec": None,
    "whatif_anchors": (),
    "whatif_segments": (),
    "whatif_result": None,
}


def init_state() -> None:
    """Initialise every session-state key the console uses (once per browser session)."""
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)


def session_seconds() -> float:
    """Inactivity timeout (``$SAFER_SESSION_MINUTES``, checked by the store); stops the page
    with the store's message when the setting is malformed."""
    try:
        return 60.0 * session_minutes()
    except SaferError as exc:
        st.error(f"The console cannot start: {exc}")
        st.stop()


@st.cache_resource(show_spinner=False)
def _factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(make_engine(url), expire_on_commit=False)


def factory_or_stop() -> sessionmaker[Session]:
    """The session factory on the configured database; stops the page if it is down or stale."""
    url = database_url()
    try:
        factory = _factory(url)
        check_schema(factory.kw["bind"])
    except SaferError as exc:
        st.error(f"The console cannot start: {exc}")
        st.stop()
    return factory


def sign_in(user: SignedInUser) -> None:
    st.session_state["user"] = user
    st.session_state["last_active"] = time.time()
    st.session_state["flash"] = ""


def sign_out(message: str = "") -> None:
    for key, value in DEFAULTS.items():
        st.session_state[key] = value
    st.session_state["flash"] = message


def current_user(factory: sessionmaker[Session]) -> SignedInUser | None:
    """The signed-in user re-read from the database, or None (expired sessions are signed out)."""
    user = st.session_state.get("user")
    if user is None:
        return None
    if time.time() - st.session_state.get("last_active", 0.0) > session_seconds():
        sign_out("Your session expired; sign in again.")
        return None
    try:
        with factory() as s:
            user = get_user(s, user.id)
    except AuthenticationError as exc:
        sign_out(str(exc))
        return None
    st.session_state["user"] = user
    st.session_state["last_active"] = time.time()
    return user


def require_page(factory: sessionmaker[Session], permission: str) -> SignedInUser:
    """Server-side check at the top of every page: signed in, session live, role allowed."""
    user = current_user(factory)
    try:
        require(user, permission)
    except SaferError as exc:
        st.error(str(exc))
        st.stop()
    return user


@contextmanager
def shown_errors(what: str) -> Iterator[None]:
    """Show store errors (and a database that went away) in the page; nothing is lost."""
    try:
        yield
    except SaferError as exc:
        st.error(str(exc))
    except OperationalError:
        st.error(
            f"The database is unavailable, so {what} did not happen; your input is kept. "
            "Try again in a moment."
        )
