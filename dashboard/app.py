"""TinyLogBERT dashboard: ``streamlit run dashboard/app.py``.

The entry point only wires things together: page list, shared sidebar (threshold, what is loaded)
and the error boundary around whichever page runs. Each page is a short script in ``views/``; the
work happens in ``core`` behind the caches in ``cache.py``.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `streamlit run` puts dashboard/, not the repo, on the path
    sys.path.insert(0, str(REPO_ROOT))

import streamlit as st

from dashboard import state
from dashboard.auth import require_login
from dashboard.guard import shown_as_message

# A local PNG: a ':material/...:' or emoji page icon makes the browser fetch it from Google
# Fonts / a CDN, and the dashboard makes no outside requests.
PAGE_ICON = str(Path(__file__).resolve().parent / "static" / "icon.png")

PAGES = [
    st.Page("views/upload.py", title="Upload", icon=":material/upload:", default=True),
    st.Page("views/distribution.py", title="Score distribution", icon=":material/bar_chart:"),
    st.Page("views/roc_pr.py", title="ROC / PR", icon=":material/show_chart:"),
    st.Page("views/embeddings.py", title="Embedding explorer", icon=":material/scatter_plot:"),
    st.Page("views/anomalies.py", title="Anomalies", icon=":material/warning:"),
    st.Page("views/timeline.py", title="Timeline", icon=":material/timeline:"),
    st.Page("views/templates.py", title="Templates", icon=":material/list_alt:"),
    st.Page("views/download.py", title="Download", icon=":material/download:"),
]

st.set_page_config(page_title="TinyLogBERT", page_icon=PAGE_ICON, layout="wide")
# As in .streamlit/config.toml, but also when started from another folder (config not read there):
# whatever escapes the error boundary below still shows no traceback.
st.set_option("client.showErrorDetails", "none")
require_login()  # TINYLOGBERT_DASHBOARD_PASSWORD: nothing below runs before the login
page = st.navigation(PAGES)
with shown_as_message():
    state.render_threshold_sidebar()
    state.render_source_sidebar()
with shown_as_message():
    page.run()
