"""Embedding explorer: a 2-D map of session embeddings; select points to read their sessions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
from tinylogbert.reports.display import plural

from dashboard import state
from dashboard.cache import session_map
from dashboard.charts import COLOUR_CHOICES, embedding_scatter, selected_session_ids
from dashboard.explain_view import blank_missing_text
from dashboard.projection import METHODS

MAX_LISTED_SESSIONS = 50
MAX_LISTED_LINES = 5000

st.title("Embedding explorer")
workspace = state.require_workspace()
if workspace is not None:
    threshold = state.current_threshold()
    result = workspace.at(threshold)
    has_labels = workspace.has_labels
    c1, c2, c3, c4 = st.columns(4)
    method = c1.radio("Projection", METHODS, horizontal=True, key="projection_method")
    if method == "t-SNE":
        neighbourhood = c2.slider("Perplexity", 5, 50, 30, key="tsne_perplexity",
                                  help="Roughly how many neighbours each point cares about.")
    else:
        neighbourhood = c2.slider("n_neighbors", 2, 100, 15, key="umap_neighbors",
                                  help="Small: local detail; large: global shape.")
    colours = [c for c in COLOUR_CHOICES if has_labels or c != "label"]
    if st.session_state.get("colour_by") not in colours:
        st.session_state["colour_by"] = "label" if has_labels else colours[0]
    colour_by = c3.radio("Colour by", colours, horizontal=True, key="colour_by")
    max_points = c4.select_slider("Points at most", [500, 1000, 2000, 3000, 5000], value=2000,
                                  key="map_points", help="Larger maps take longer to compute.")

    with st.spinner(f"Computing the {method} map (cached afterwards)…"):
        sample, coords = session_map(workspace.token, repr(workspace.labels), method,
                                     float(neighbourhood), int(max_points), workspace)
    frame = result.session_frame
    idx = sample.indices
    labels = workspace.session_labels
    points = pd.DataFrame({
        "x": coords[:, 0], "y": coords[:, 1],
        "session_id": frame["session_id"].to_numpy()[idx],
        "score": frame["score"].to_numpy()[idx],
        "top_line": workspace.top_line_messages[idx],
        "label": labels[idx] if labels is not None else np.full(len(idx), -1),
        "flagged": frame["score"].to_numpy()[idx] >= threshold,
    })
    title = f"{method} of {plural(len(idx), 'session')}"
    event = st.plotly_chart(
        embedding_scatter(points, colour_by, title), key="embedding_map",
        on_select="rerun", selection_mode=("points", "box", "lasso"),
    )
    if sample.is_complete:
        st.caption(("The only session." if sample.n_total == 1 else
                    f"All {sample.n_total:,} sessions.") + " Identical sessions share one point.")
    else:
        st.caption(
            f"{len(idx):,} of {plural(sample.n_total, 'session')}: the {sample.n_top:,} "
            "highest-scoring "
            "(so every flagged session while the threshold flags up to that many), every labelled "
            "anomaly, and a random sample of the rest. Identical sessions share one point."
        )

    selected = selected_session_ids(event.selection if event else None)
    if not selected:
        st.caption("Click, box- or lasso-select points to list their sessions and lines.")
    else:
        chosen = frame[frame["session_id"].isin(selected)].sort_values("score", ascending=False)
        st.subheader(f"{plural(len(chosen), 'selected session')}")
        st.dataframe(chosen, hide_index=True, key="selected_sessions")
        listed = chosen["session_id"].head(MAX_LISTED_SESSIONS)
        lines = pd.concat([result.session_lines(sid).assign(session=sid) for sid in listed])
        st.markdown(f"**Their lines** ({min(len(lines), MAX_LISTED_LINES):,} shown"
                    + (f" of the first {MAX_LISTED_SESSIONS} sessions" if len(chosen) >
                       MAX_LISTED_SESSIONS else "") + ")")
        st.dataframe(
            blank_missing_text(lines.head(MAX_LISTED_LINES)[
                ["session", "line_no", "timestamp", "level", "message", "score", "expected"]]),
            hide_index=True, key="selected_lines",
        )
