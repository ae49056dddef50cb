"""Sign-in page."""

from __future__ import annotations

import streamlit as st

from clinical_ui import session
from safer.store import authenticate

factory = session.factory_or_stop()
st.title("SAFER console — sign in")
if st.session_state["flash"]:
    st.info(st.session_state["flash"])
with st.form("sign_in_form"):
    username = st.text_input("User name", key="signin_user")
    password = st.text_input("Password", type="password", key="signin_password")
    submitted = st.form_submit_button("Sign in")
if submitted:
    with session.shown_errors("signing in"), factory() as s:
        session.sign_in(authenticate(s, username, password))
        st.rerun()
