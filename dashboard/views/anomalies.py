"""Anomalies: the sessions above the threshold; pick one to see why it scored high."""
from __future__ import annotations

import streamlit as st
from tinylogbert.errors import TinyLogBERTError

from dashboard import state
from dashboard.explain_view import explanation_html, shade_by_surprisal
from dashboard.feedback import mark_session_normal

PICK = "anomaly_pick"
TABLE = "anomaly_table"
MARKED = "anomaly_marked"  # the last "Mark as normal" outcome: ("ok" | "error", message)
TOP_LINES = 5
MAX_SESSION_ROWS = 2000
COLUMNS = ["session_id", "score", "grade", "n_lines", "first_line_no", "top_line"]
GRADE_PROBABILITIES = ["p_normal", "p_elevated", "p_high", "p_critical"]


def pick_from_table(session_ids: list[str]) -> None:
    """A row clicked in the table becomes the picked session."""
    rows = st.session_state[TABLE].selection.rows
    if rows:
        st.session_state[PICK] = session_ids[rows[0]]


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
    result = workspace.at(threshold)
    frame = result.session_frame.assign(top_line=workspace.top_line_messages)
    flagged = frame[frame["is_anomaly"]].sort_values("score", ascending=False, kind="stable")
    outcome = st.session_state.pop(MARKED, None)
    if outcome:
        (st.success if outcome[0] == "ok" else st.error)(outcome[1])
    n_suppressed = result.n_suppressed_sessions
    if n_suppressed:
        st.caption(f"{n_suppressed:,} sessions are not flagged because feedback marked them (or "
                   "sessions like them) as normal: column suppressed_by of the download; "
                   "tinylogbert feedback --list / --remove manages the entries.")
    if flagged.empty:
        st.info(f"No session scores at or above {threshold:.4f}: lower the threshold in the "
                "sidebar to see the highest-scoring ones.", icon=":material/check_circle:")
    else:
        columns = COLUMNS + [c for c in GRADE_PROBABILITIES if c in flagged.columns]
        columns += ["label"] if "label" in flagged.columns else []
        table = flagged[columns].reset_index(drop=True)
        ids = table["session_id"].tolist()
        st.caption(f"{len(table):,} sessions at or above {threshold:.4f}, highest first. Click a "
                   "column to sort, a row to explain it.")
        st.dataframe(
            table, hide_index=True, key=TABLE, on_select=lambda: pick_from_table(ids),
            selection_mode="single-row", height=min(38 + 35 * len(table), 380),
            column_config={"score": st.column_config.NumberColumn(format="%.4f"),
                           "top_line": st.column_config.TextColumn("top line"),
                           **{c: st.column_config.ProgressColumn(c, min_value=0.0, max_value=1.0,
                                                                 format="%.2f")
                              for c in GRADE_PROBABILITIES}},
        )
        if st.session_state.get(PICK) not in ids:
            st.session_state[PICK] = ids[0]
        session_id = st.selectbox(
            "Session", ids, key=PICK,
            format_func=lambda sid: f"{sid} (score {table.loc[ids.index(sid), 'score']:.3f})",
        )
        explanation = result.explain(session_id, k=TOP_LINES)
        cols = st.columns(4)
        cols[0].metric("Score", f"{explanation.score:.3f}", help=f"threshold {threshold:.4f}")
        row = table.loc[ids.index(session_id)]
        cols[1].metric("Grade", row["grade"],
                       help=" · ".join(f"{c.removeprefix('p_')} {row[c]:.2f}"
                                       for c in GRADE_PROBABILITIES if c in table.columns))
        cols[2].metric("Lines", f"{table.loc[ids.index(session_id), 'n_lines']:,}")
        if "label" in table.columns:
            label = int(table.loc[ids.index(session_id), "label"])
            cols[3].metric("Label", {1: "anomaly", 0: "normal"}.get(label, "unlabelled"))
        st.button("Mark as normal", key="mark_normal", icon=":material/thumb_up:",
                  on_click=mark_normal, args=(workspace, session_id),
                  help="A false alarm: store this with the model, so that this session and "
                       "sessions with the same sequence of lines are no longer flagged (here, "
                       "and by every later score, API call and dashboard view).")
        st.markdown(f"**Why:** {explanation.summary()}")
        st.caption("Signals (standardised): " + " · ".join(
            f"{name.removeprefix('z_')} {value:+.2f}" for name, value in
            explanation.components.items()))
        st.markdown(f"**The {len(explanation.lines)} lines that weigh most** (rarity and surprise; "
                    "unexpected words marked)")
        st.html(explanation_html(explanation))
        lines = result.session_lines(session_id)
        shown = lines[["line_no", "timestamp", "level", "component", "message",
                       "surprisal_in_session", "expected"]].head(MAX_SESSION_ROWS)
        st.markdown(f"**All {len(lines):,} lines of the session**"
                    + (f" (first {MAX_SESSION_ROWS:,})" if len(lines) > MAX_SESSION_ROWS else "")
                    + ", shaded by how surprising each line is")
        st.dataframe(shade_by_surprisal(shown), hide_index=True, key="session_lines")
