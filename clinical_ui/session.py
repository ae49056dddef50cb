"""Console session state, sign-in, expiry and error display, in one place for every page."""

from __future__ import annotations

import os
import secrets
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
    issue_session_token,
    make_engine,
    read_session_token,
    require,
    session_minutes,
)
from safer.store.users import SESSION_SECRET_ENV

TOKEN = "s"  # query parameter holding the signed session token (reload, deep links)

DEFAULTS = {
    "user": None,  # SignedInUser or None
    "last_active": 0.0,
    "nonce": "",  # names this sign-in in its session tokens
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


@st.cache_resource(show_spinner=False)
def _secret() -> bytes:
    """The key that signs session tokens: ``$SAFER_SESSION_SECRET`` (set by ``safer console``
    for each start) or a random key for this server process; a restart invalidates links."""
    raw = os.environ.get(SESSION_SECRET_ENV)
    if not raw:
        return secrets.token_bytes(32)
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        key = b""
    if len(key) < 16:
        st.error(f"The console cannot start: ${SESSION_SECRET_ENV} must be at least 32 hex "
                 "digits (e.g. the output of `python -c \"import secrets; "
                 "print(secrets.token_hex(32))\"`), or unset for a random key.")  # fmt: skip
        st.stop()
    return key


@st.cache_resource(show_spinner=False)
def _revoked() -> set[str]:
    """Nonces of sign-ins that signed out in this server process (their tokens are refused)."""
    return set()


def token() -> str:
    """A fresh token for the signed-in session (empty when signed out)."""
    user = st.session_state.get("user")
    if user is None:
        return ""
    return issue_session_token(user, _secret(), nonce=st.session_state.get("nonce") or None)


def sign_in(user: SignedInUser) -> None:
    st.session_state["user"] = user
    st.session_state["last_active"] = time.time()
    st.session_state["flash"] = ""
    st.session_state["nonce"] = secrets.token_hex(8)
    st.query_params[TOKEN] = token()


def sign_out(message: str = "") -> None:
    if st.session_state.get("nonce"):
        _revoked().add(st.session_state["nonce"])
    for key, value in DEFAULTS.items():
        st.session_state[key] = value
    st.session_state["flash"] = message
    st.query_params.pop(TOKEN, None)


def current_user(factory: sessionmaker[Session]) -> SignedInUser | None:
    """The signed-in user re-read from the database, or None (expired sessions are signed out).

    A new browser session (a reload, a deep link) finds its sign-in again from the signed token
    in the address; each page run re-issues the token, so it expires after
    ``$SAFER_SESSION_MINUTES`` without activity like the session itself.
    """
    user = st.session_state.get("user")
    try:
        with factory() as s:
            if user is None:
                raw = st.query_params.get(TOKEN)
                if not raw:
                    return None
                user, nonce = read_session_token(s, raw, _secret(), revoked=_revoked())
                st.session_state["nonce"] = nonce
                st.session_state["last_active"] = time.time()
            elif time.time() - st.session_state.get("last_active", 0.0) > session_seconds():
                sign_out("Your session expired; sign in again.")
                return None
            else:
                user, _ = read_session_token(s, token(), _secret(), revoked=_revoked())
    except AuthenticationError as exc:
        sign_out(str(exc))
        return None
    st.session_state["user"] = user
    st.session_state["last_active"] = time.time()
    st.query_params[TOKEN] = token()
    return user


def open_decision(rec_id: int) -> None:
    """Go to the decision page for ``rec_id`` with a deep link (``?rec=ID``) in the address."""
    st.session_state["rec_id"] = int(rec_id)
    st.switch_page("pages/decision.py", query_params={"rec": str(int(rec_id)), TOKEN: token()})


def requested_decision() -> int | None:
    """The decision the address asks for (``?rec=ID``), else the one opened last."""
    raw = st.query_params.get("rec")
    if raw is not None and str(raw).isdigit():
        st.session_state["rec_id"] = int(raw)
    return st.session_state.get("rec_id")


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


@st.cache_resource(show_spinner="Loading the model...")
def _model(model_dir: str):
    from safer.models import load_model

    return load_model(model_dir)


def configured_model():
    """The model ``safer console --model DIR`` (``$SAFER_MODEL_DIR``) names, or None when none is
    configured; a model that cannot be loaded is shown as an error and gives None."""
    model_dir = os.environ.get("SAFER_MODEL_DIR")
    if not model_dir:
        return None
    try:
        return _model(model_dir)
    except SaferError as exc:
        st.error(f"The model in {model_dir} could not be loaded: {exc}")
        return None


@st.cache_data(show_spinner="Computing the model's top factors...", max_entries=256)
def top_factors_of(_model, model_hash: str, _history, rec_id: int, action: int):
    """:func:`safer.decisions.top_factors` of one stored decision, computed once per decision."""
    from safer.decisions import top_factors

    return top_factors(_model, _history, action, k=5)
