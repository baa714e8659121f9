"""Anomalies: the sessions above the threshold; pick one to see why it scored high."""
from __future__ import annotations

import streamlit as st
from tinylogbert.errors import TinyLogBERTError
from tinylogbert.reports.display import format_threshold, plural

from dashboard import state
from dashboard.explain_view import GRADE_PROBABILITIES, explore_sessions
from dashboard.feedback import mark_session_normal

PICK = "anomaly_pick"
TABLE = "anomaly_table"
MARKED = "anomaly_marked"  # the last "Mark as normal" outcome: ("ok" | "error", message)
COLUMNS = ["session_id", "score", "grade", "n_lines", "first_line_no", "top_line"]


def mark_normal(workspace, session_id: str) -> None:
    """The button's callback (runs before the page, so the list it draws no longer has it)."""
    try:
        entry = mark_session_normal(workspace, session_id)
    except TinyLogBERTError as exc:
        st.session_state[MARKED] = ("error", f"Could not mark {session_id} as normal: {exc}")
        return
    st.session_state[MARKED] = (
        "ok", (f"Marked {session_id} as normal (feedback {entry.id}, stored with the model): "
               "it and sessions with the same sequence of lines are no longer flagged."))


st.title("Anomalies")
workspace = state.require_workspace()
if workspace is not None:
    threshold = state.current_threshold()
    shown_threshold = format_threshold(threshold)
    result = workspace.at(threshold)
    frame = result.session_frame.assign(top_line=workspace.top_line_messages)
    flagged = frame[frame["is_anomaly"]].sort_values("score", ascending=False, kind="stable")
    outcome = st.session_state.pop(MARKED, None)
    if outcome:
        (st.success if outcome[0] == "ok" else st.error)(outcome[1])
    n_suppressed = result.n_suppressed_sessions
    if n_suppressed:
        st.caption(f"{plural(n_suppressed, 'session')} not flagged because feedback marked them "
                   "(or sessions like them) as normal: column suppressed_by of the download; "
                   "tinylogbert feedback --list / --remove manages the entries.")
    if flagged.empty:
        st.info(f"No session scores at or above {shown_threshold}: lower the threshold in the "
                "sidebar to see the highest-scoring ones.", icon=":material/check_circle:")
    else:
        columns = COLUMNS + [c for c in GRADE_PROBABILITIES if c in flagged.columns]
        columns += ["label"] if "label" in flagged.columns else []
        table = flagged[columns].reset_index(drop=True)
        st.caption(f"{plural(len(table), 'session')} at or above {shown_threshold}, highest "
                   "first. Click a column to sort, a row to explain it.")
        explore_sessions(
            result, table, table_key=TABLE, pick_key=PICK, lines_key="session_lines",
            max_height=380,
            column_config={"top_line": st.column_config.TextColumn("top line"),
                           **{c: st.column_config.ProgressColumn(c, min_value=0.0, max_value=1.0,
                                                                 format="%.2f")
                              for c in GRADE_PROBABILITIES}},
            actions=lambda session_id: st.button(
                "Mark as normal", key="mark_normal", icon=":material/thumb_up:",
                on_click=mark_normal, args=(workspace, session_id),
                help="A false alarm: store this with the model, so that this session and "
                     "sessions with the same sequence of lines are no longer flagged (here, "
                     "and by every later score, API call and dashboard view)."),
        )
