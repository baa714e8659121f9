"""Score distribution: session and line score histograms, the threshold, and metrics if labelled."""
from __future__ import annotations

import numpy as np
import streamlit as st
from tinylogbert.reports.display import format_threshold, plural
from tinylogbert.scoring.evaluate import evaluate_scores

from dashboard import state
from dashboard.charts import score_histogram

st.title("Score distribution")
workspace = state.require_workspace()
if workspace is not None:
    threshold = state.current_threshold()
    result = workspace.at(threshold)
    labels = workspace.session_labels
    log_scale = st.toggle("Log-scale counts", value=True,
                          help="Anomalies are rare; a log scale keeps their bars visible.")

    cols = st.columns(4)
    cols[0].metric("Sessions flagged", f"{result.n_anomalous_sessions:,}",
                   help=f"of {result.n_sessions:,}, at threshold {format_threshold(threshold)}")
    if labels is not None:
        ev = evaluate_scores(result.session_scores, labels, threshold)
        cols[1].metric("Precision", f"{ev.precision:.3f}")
        cols[2].metric("Recall", f"{ev.recall:.3f}")
        cols[3].metric("F1", f"{ev.f1:.3f}")
        st.caption(
            f"Session level, at the current threshold: {plural(ev.n, 'labelled session')}, "
            f"{ev.n_anomalies:,} anomalous, {ev.n_flagged:,} flagged"
            + (f"; {plural(ev.n_unlabeled, 'session')} without a label "
               f"{'is' if ev.n_unlabeled == 1 else 'are'} left out." if ev.n_unlabeled else ".")
        )
    else:
        st.info("No labels: add a labels CSV on the Upload page to see precision, recall and F1 "
                "at this threshold.", icon=":material/label:")

    st.plotly_chart(
        score_histogram(result.session_scores, labels, threshold, "Session scores",
                        log_y=log_scale),
        key="session_histogram",
    )
    line_labels = result.line_labels
    if line_labels is not None and not (np.asarray(line_labels) >= 0).any():
        line_labels = None
    st.plotly_chart(
        score_histogram(result.line_scores, line_labels, result.line_threshold, "Line scores",
                        threshold_name="line threshold (model)", log_y=log_scale),
        key="line_histogram",
    )
    st.caption(
        "A line's score is how surprising it is in its session (its surprisal in nats, times "
        "the weight of its severity level); lines are judged at the "
        "model's line threshold, sessions at the threshold in the sidebar."
    )
