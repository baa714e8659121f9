"""An optional password in front of the whole dashboard (``TINYLOGBERT_DASHBOARD_PASSWORD``).

Why: the dashboard can train models and read any upload; once it listens beyond 127.0.0.1, anyone
who can reach the port could use it. With the variable set, a login form comes before any page
content; the password is compared in constant time (``hmac.compare_digest``) and never shown.
"""
from __future__ import annotations

import hmac
import os

import streamlit as st

PASSWORD_ENV = "TINYLOGBERT_DASHBOARD_PASSWORD"
AUTHENTICATED = "authenticated"


def expected_password() -> str | None:
    """The password from the environment; unset or blank: no login."""
    value = os.environ.get(PASSWORD_ENV, "")
    return value if value.strip() else None


def password_matches(offered: str, expected: str) -> bool:
    return hmac.compare_digest(offered.encode("utf-8"), expected.encode("utf-8"))


def require_login() -> None:
    """Show the login form and stop the script until the session has given the password."""
    expected = expected_password()
    if expected is None or st.session_state.get(AUTHENTICATED):
        return
    st.title("TinyLogBERT")
    with st.form("login"):
        offered = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        if password_matches(offered or "", expected):
            st.session_state[AUTHENTICATED] = True
            st.session_state.pop("login_password", None)
            st.rerun()
        st.error("Wrong password.", icon=":material/lock:")
    st.caption(f"This dashboard is protected by a password ({PASSWORD_ENV}).")
    st.stop()
