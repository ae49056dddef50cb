"""SAFER clinician console: the router. Pages are thin views in ``pages/``.

Run with ``safer console`` (it sets ``SAFER_DB_URL``); pages shown depend on the user's role, and
each page checks the role again, server-side, before it shows or does anything.
"""

from __future__ import annotations

import streamlit as st

from clinical_ui import session
from safer.store import PERMISSIONS

st.set_page_config(page_title="SAFER console", layout="wide")
session.init_state()
factory = session.factory_or_stop()
user = session.current_user(factory)

if user is None:
    pages = [st.Page("pages/sign_in.py", title="Sign in", url_path="sign_in", default=True)]
else:
    pages = []
    if user.role in PERMISSIONS["view_queue"]:
        pages += [
            st.Page("pages/queue.py", title="Review queue", url_path="queue", default=True),
            st.Page("pages/decision.py", title="Decision", url_path="decision"),
            st.Page("pages/what_if.py", title="What-if", url_path="what_if"),
        ]
    if user.role in PERMISSIONS["view_audit"]:
        pages.append(st.Page("pages/audit.py", title="Audit", url_path="audit", default=not pages))
    with st.sidebar:
        st.write(f"Signed in as **{user.username}** ({user.role})")
        if st.button("Sign out", key="sign_out"):
            session.sign_out("Signed out.")
            st.rerun()

st.navigation(pages).run()
