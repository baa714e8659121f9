"""Does the model fit the log? Warnings shared by the CLI, the API and the dashboard.

Why: a model only knows the lines of the log it was trained on. Scoring Thunderbird with the
shipped HDFS checkpoint flagged 100 of 100 sessions and "explained" them with HDFS lines, and
nothing said the figures were meaningless. These checks say so, with the reason and the command
that trains a model on the log instead. They return plain strings (no printing, no Streamlit):
the CLI prints ``warning: ...``, the API returns a ``warnings`` list (and a header for CSV), the
dashboard shows them and opens "train a new model".
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tinylogbert.io.log_formats import LABEL_SUFFIX
from tinylogbert.io.log_reader import LogLines

if TYPE_CHECKING:
    from tinylogbert.io.log_formats import LogFormat
    from tinylogbert.io.log_parser import ParsedLog
    from tinylogbert.scoring.detector import TinyLogBERTDetector

# Most lines unknown: above this share of lines outside the model's line vocabulary (and well
# above the share its own training log had), its scores say "unlike HDFS", not "anomalous".
MAX_UNKNOWN_SHARE = 0.5
UNKNOWN_MARGIN = 0.25
# Training on fewer lines or sessions than this gives a model whose threshold means little.
MIN_TRAINING_LINES = 1000
MIN_TRAINING_SESSIONS = 20


def train_hint(source: str) -> str:
    """The command that trains a model on ``source`` (a placeholder for in-memory input)."""
    log = source if source and not source.startswith("<") and source != "request" else "LOG"
    return f"tinylogbert train {log} --out MODEL_DIR, then score with --model MODEL_DIR"


def input_warnings(lines: LogLines) -> list[str]:
    """What reading the log had to change: lines whose invalid UTF-8 bytes were replaced."""
    return replaced_bytes_warnings(lines.source, len(lines), lines.invalid_lines,
                                   lines.replaced_bytes)


def replaced_bytes_warnings(source: str, n_lines: int, invalid_lines: int,
                            replaced: bool) -> list[str]:
    """``input_warnings`` from counts (``streaming`` never holds all the lines)."""
    if not replaced:
        return []
    n = invalid_lines or 1
    return [(f"{source}: {n:,} of {n_lines:,} line{'s' if n_lines != 1 else ''} "
            f"held bytes that are not valid UTF-8; they were replaced by U+FFFD and scored")]


def _base_name(name: str) -> str:
    return name.removesuffix(LABEL_SUFFIX)


def unknown_line_share(detector: TinyLogBERTDetector, parsed: ParsedLog) -> float:
    """Share of the log's lines (normalised words) that are not in the model's line vocabulary."""
    if len(parsed) == 0:
        return 0.0
    vocab = pa.array(list(detector.line_vocab_), type=pa.large_string())
    words = pc.cast(parsed.words, pa.large_string())
    known = pc.is_in(words, value_set=vocab).to_numpy(zero_copy_only=False)
    return float(1.0 - known.mean())


def _training_unknown_share(detector: TinyLogBERTDetector) -> float:
    counts = np.asarray(getattr(detector, "line_class_counts_", []) or [0], dtype=np.float64)
    total = counts.sum()
    return float(counts[0] / total) if total else 0.0  # class 0: lines outside the vocabulary


def fit_warnings(detector: TinyLogBERTDetector, parsed: ParsedLog) -> list[str]:
    """Reasons the model does not fit ``parsed``: another format than it was trained on, or most
    lines unknown to it. Empty when it fits."""
    return fit_warnings_for(detector, parsed.format, unknown_line_share(detector, parsed),
                            parsed.source)


def fit_warnings_for(detector: TinyLogBERTDetector, fmt: LogFormat, unknown: float,
                     source: str) -> list[str]:
    """``fit_warnings`` from the log's format and unknown-line share (``streaming`` counts the
    share chunk by chunk)."""
    reasons = []
    trained = getattr(detector, "format_", None)
    if trained is not None and _base_name(fmt.name) != _base_name(trained.name) \
            and fmt.regex != trained.regex:
        reasons.append(f"the log's format is {fmt.name!r} but the model was trained on "
                       f"{trained.name!r} logs")
    if unknown > MAX_UNKNOWN_SHARE and unknown > _training_unknown_share(detector) + UNKNOWN_MARGIN:
        reasons.append(f"{unknown:.0%} of its lines are unknown to the model")
    if not reasons:
        return []
    return [(f"the model does not fit {source}: {'; '.join(reasons)}, so its scores and "
            f"explanations are not meaningful here; train a model on this log: "
            f"{train_hint(source)}")]


def score_warnings(detector: TinyLogBERTDetector, parsed: ParsedLog,
                   lines: LogLines | None = None) -> list[str]:
    """Everything a front end should show next to a score: input repairs, then fit."""
    return (input_warnings(lines) if lines is not None else []) + fit_warnings(detector, parsed)


def training_warnings(summary: dict) -> list[str]:
    """A model trained on a handful of lines or sessions is not a meaningful baseline."""
    lines, sessions = int(summary.get("lines", 0)), int(summary.get("sessions", 0))
    if lines >= MIN_TRAINING_LINES and sessions >= MIN_TRAINING_SESSIONS:
        return []
    return [(f"trained on only {lines:,} lines in {sessions:,} sessions: the model will not be "
            f"meaningful (train on at least {MIN_TRAINING_LINES:,} lines and "
            f"{MIN_TRAINING_SESSIONS} sessions of normal operation)")]
