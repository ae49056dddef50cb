"""SAFER clinician console: the router. Pages are thin views in ``pages/``.

Run with ``safer console`` (it sets ``SAFER_DB_URL``); pages shown depend on the user's role, and
each page checks the role again, server-side, before it shows or does anything. A signed session
token in the address (``?s=...``) keeps the sign-in across a reload; a deep link to a page
(e.g. ``/decision?rec=12``) opened while signed out shows the sign-in form and then that page.
"""

from __future__ import annotations

import streamlit as st

from clinical_ui import session
from safer.store import PERMISSIONS

PAGES = {  # url path -> (script, title, permission)
    "queue": ("pages/queue.py", "Review queue", "view_queue"),
    "decision": ("pages/decision.py", "Decision", "view_queue"),
    "what_if": ("pages/what_if.py", "What-if", "view_queue"),
    "audit": ("pages/audit.py", "Audit", "view_audit"),
}

st.set_page_config(page_title="SAFER console", layout="wide")
session.init_state()
factory = session.factory_or_stop()
user = session.current_user(factory)

if user is None:
    # every path signs in first, then the same address shows the page it names
    pages = [st.Page("pages/sign_in.py", title="Sign in", url_path="sign_in", default=True)]
    pages += [st.Page("pages/sign_in.py", title="Sign in", url_path=path) for path in PAGES]
    st.navigation(pages, position="hidden").run()
else:
    pages = []
    for path, (script, title, permission) in PAGES.items():
        if user.role in PERMISSIONS[permission]:
            pages.append(st.Page(script, title=title, url_path=path, default=not pages))
    with st.sidebar:
        st.write(f"Signed in as **{user.username}** ({user.role})")
        if st.button("Sign out", key="sign_out"):
            session.sign_out("Signed out.")
            st.rerun()
    st.navigation(pages).run()
