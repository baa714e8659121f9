"""How one session's explanation is drawn: the lines that weigh most, with the odd words marked.

The unexpected words come from core's explanation as normalised (lower-case, masked) words; they
are marked wherever they occur as whole words in the raw message, case-insensitively.
"""
from __future__ import annotations

import html
import re

import pandas as pd
from tinylogbert.scoring.results import SessionExplanation

MAX_SHADE = 0.45  # opacity of the highest-scoring line's row


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
