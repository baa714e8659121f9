"""How one session's explanation is drawn: the lines that weigh most, with the odd words marked.

The unexpected words come from core's explanation as normalised (lower-case, masked) words; they
are marked wherever they occur as whole words in the raw message, case-insensitively.
``render_explanation`` draws the whole view, the same on every page that opens a session
(Anomalies, Timeline, Templates).
"""
from __future__ import annotations

import html
import re
from collections.abc import Callable

import pandas as pd
import streamlit as st
from tinylogbert.reports.display import format_threshold, plural
from tinylogbert.scoring.results import ScoreResult, SessionExplanation

MAX_SHADE = 0.45  # opacity of the highest-scoring line's row
TOP_LINES = 5
MAX_SESSION_ROWS = 2000
GRADE_PROBABILITIES = ["p_normal", "p_elevated", "p_high", "p_critical"]
LINE_COLUMNS = ["line_no", "timestamp", "level", "component", "message", "surprisal_in_session",
                "expected"]


def blank_missing_text(lines: pd.DataFrame) -> pd.DataFrame:
    """Text columns (level, component...) with empty cells where the line had none: a table
    shows missing text as the word "None", which reads as a level named None (syslog lines
    carry no level; RFC 3164/5424 lines get theirs from the priority when parsed)."""
    text = [c for c in ("level", "component", "timestamp", "message") if c in lines.columns
            and (pd.api.types.is_object_dtype(lines[c]) or pd.api.types.is_string_dtype(lines[c]))]
    return lines.fillna({c: "" for c in text}) if text else lines


def mark_words(message: str, words: list[str]) -> str:
    """HTML of ``message`` with every whole-word occurrence of ``words`` wrapped in <mark>."""
    if not words:
        return html.escape(message)
    pattern = re.compile(
        r"(?<![A-Za-z])(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        + r")(?![A-Za-z])", re.IGNORECASE,
    )
    out, pos = [], 0
    for match in pattern.finditer(message):
        out.append(html.escape(message[pos:match.start()]))
        out.append(f"<mark>{html.escape(match.group(0))}</mark>")
        pos = match.end()
    out.append(html.escape(message[pos:]))
    return "".join(out)


def explanation_html(explanation: SessionExplanation) -> str:
    """A compact list of the top lines: message (odd words marked), probability, expectation."""
    items = []
    for reason in explanation.lines:
        unexpected = ", ".join(html.escape(w) for w in reason.unexpected_words) or "none"
        items.append(
            "<li style='margin-bottom:0.6em'>"
            f"<b>line {reason.line_no:,}</b> · p = {reason.probability:.2g} "
            f"(surprisal {reason.surprisal:.2f})<br>"
            f"<code>{mark_words(reason.message, reason.unexpected_words)}</code><br>"
            f"<small>expected: <code>{html.escape(reason.expected)}</code> "
            f"(p = {reason.expected_probability:.2g}) · unexpected words: {unexpected}</small>"
            "</li>"
        )
    return "<ol style='padding-left:1.2em'>" + "".join(items) + "</ol>"


def shade_by_surprisal(lines: pd.DataFrame, column: str = "surprisal_in_session"):
    """A Styler that shades each row by how surprising the line is within its session (the
    darker, the more surprising), so the odd lines stand out in sessions of any length."""
    values = lines[column].to_numpy(dtype=float)
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 0.0)
    span = high - low

    def shade(row: pd.Series) -> list[str]:
        strength = (row[column] - low) / span if span > 0 else 0.0
        return [f"background-color: rgba(228, 87, 86, {MAX_SHADE * strength:.2f})"] * len(row)

    return lines.style.apply(shade, axis=1).format(precision=3)


def pick_clicked_row(table_key: str, pick_key: str, values: list[str]) -> None:
    """``on_select`` of a table: the clicked row's value (a session id, a template) becomes the
    picked one, which the selectbox keyed ``pick_key`` under the table then shows."""
    rows = st.session_state[table_key].selection.rows
    if rows:
        st.session_state[pick_key] = values[rows[0]]


def explore_sessions(
    result: ScoreResult, table: pd.DataFrame, *, table_key: str, pick_key: str, lines_key: str,
    max_height: int, column_config: dict | None = None,
    actions: Callable[[str], None] | None = None,
) -> str:
    """A sessions table (one row per session, with ``session_id`` and ``score``) whose clicked
    row picks the session that the selectbox under it shows and ``render_explanation`` explains;
    ``actions(session_id)`` draws above the reasons. Returns the picked session id."""
    ids = table["session_id"].tolist()
    st.dataframe(table, hide_index=True, key=table_key,
                 on_select=lambda: pick_clicked_row(table_key, pick_key, ids),
                 selection_mode="single-row", height=min(38 + 35 * len(table), max_height),
                 column_config={"score": st.column_config.NumberColumn(format="%.4f"),
                                **(column_config or {})})
    if st.session_state.get(pick_key) not in ids:
        st.session_state[pick_key] = ids[0]
    scores = dict(zip(ids, table["score"].to_numpy()))
    session_id = st.selectbox("Session", ids, key=pick_key,
                              format_func=lambda sid: f"{sid} (score {scores[sid]:.3f})")
    render_explanation(result, session_id, key=lines_key,
                       actions=(lambda: actions(session_id)) if actions else None)
    return session_id


def render_explanation(result: ScoreResult, session_id: str, key: str,
                       actions: Callable[[], None] | None = None) -> SessionExplanation:
    """Score, grade, size and label of one session, why it scored so (``actions``, e.g. a
    button, drawn just above the reasons), its top lines and all its lines, shaded."""
    explanation = result.explain(session_id, k=TOP_LINES)
    row = result.session_frame.iloc[result.session_index(session_id)]
    threshold = format_threshold(result.threshold)
    cols = st.columns(4)
    cols[0].metric("Score", f"{explanation.score:.3f}", help=f"threshold {threshold}")
    cols[1].metric("Grade", row["grade"] if "grade" in row else row["severity"],
                   help=" · ".join(f"{c.removeprefix('p_')} {row[c]:.2f}"
                                   for c in GRADE_PROBABILITIES if c in row))
    cols[2].metric("Lines", f"{int(row['n_lines']):,}")
    if "label" in row:
        cols[3].metric("Label", {1: "anomaly", 0: "normal"}.get(int(row["label"]), "unlabelled"))
    if actions is not None:
        actions()
    st.markdown(f"**Why:** {explanation.summary()}")
    st.caption("Signals (standardised): " + " · ".join(
        f"{name.removeprefix('z_')} {value:+.2f}" for name, value in
        explanation.components.items()))
    weighs = ("**The line that weighs most**" if len(explanation.lines) == 1 else
              f"**The {len(explanation.lines)} lines that weigh most**")
    st.markdown(f"{weighs} (rarity and surprise; unexpected words marked)")
    st.html(explanation_html(explanation))
    lines = result.session_lines(session_id)
    shown = blank_missing_text(lines[LINE_COLUMNS].head(MAX_SESSION_ROWS))
    st.markdown(("**The session's only line**" if len(lines) == 1 else
                 f"**All {plural(len(lines), 'line')} of the session**")
                + (f" (first {MAX_SESSION_ROWS:,})" if len(lines) > MAX_SESSION_ROWS else "")
                + ", shaded by how surprising each line is")
    st.dataframe(shade_by_surprisal(shown), hide_index=True, key=key)
    return explanation
