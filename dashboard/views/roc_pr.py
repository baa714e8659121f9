"""ROC and precision-recall curves of the session scores, with the current threshold marked."""
from __future__ import annotations

import streamlit as st
from tinylogbert.reports.display import format_threshold, plural
from tinylogbert.scoring.evaluate import curves, evaluate_scores

from dashboard import state
from dashboard.charts import operating_point, pr_figure, roc_figure

st.title("ROC / PR")
workspace = state.require_workspace()
if workspace is not None:
    threshold = state.current_threshold()
    scores = workspace.at(threshold).session_scores
    labels = workspace.session_labels
    if labels is None:
        st.info(
            "These curves need labels, and this log has none. Add a labels CSV on the Upload page "
            "(BlockId,Label for HDFS) or use the HDFS sample, which comes with its labels.",
            icon=":material/label:",
        )
        st.page_link(state.UPLOAD_PAGE, label="Add labels on the Upload page",
                     icon=":material/upload:")
    else:
        ev = evaluate_scores(scores, labels, threshold)
        if ev.roc_auc is None:
            only = "anomalous" if ev.n_anomalies else "normal"
            sessions = ("The only labelled session is" if ev.n == 1 else
                        f"All {ev.n:,} labelled sessions are")
            st.info(f"{sessions} {only}: curves need both normal and anomalous sessions.",
                    icon=":material/label:")
        else:
            point = operating_point(scores, labels, threshold)
            c = curves(scores, labels)
            cols = st.columns(4)
            cols[0].metric("ROC-AUC", f"{ev.roc_auc:.3f}")
            cols[1].metric("PR-AUC", f"{ev.pr_auc:.3f}", help="average precision")
            cols[2].metric("At this threshold: recall", f"{point.tpr:.3f}")
            cols[3].metric("False positive rate", f"{point.fpr:.4f}")
            left, right = st.columns(2)
            left.plotly_chart(roc_figure(c, ev.roc_auc, point), key="roc_curve")
            right.plotly_chart(
                pr_figure(c, ev.pr_auc, point, base_rate=ev.n_anomalies / ev.n), key="pr_curve"
            )
            st.caption(
                f"Session level: {plural(ev.n, 'labelled session')} ({ev.n_anomalies:,} "
                f"anomalous). The × marks threshold {format_threshold(threshold)} "
                f"({point.n_flagged:,} flagged). Best F1 on these labels would be "
                f"{ev.best_f1:.3f} at {format_threshold(ev.best_f1_threshold)}: chosen with the "
                "labels, so an upper bound, not a result."
            )
