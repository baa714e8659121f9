"""Does the model fit the log? Warnings shared by the CLI, the API and the dashboard.

Why: a model only knows the lines of the log it was trained on. Scoring Thunderbird with the
shipped HDFS checkpoint flagged 100 of 100 sessions and "explained" them with HDFS lines, and
nothing said the figures were meaningless. These checks say so, with the reason and the command
that trains a model on the log instead. They return plain strings (no printing, no Streamlit):
the CLI prints ``warning: ...``, the API returns a ``warnings`` list (and a header for CSV), the
dashboard shows them and opens "train a new model".
"""
from __future__ import annotations

from dataclasses import dataclass
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
    """Share of the log's lines (normalised words) that the model does not know: not in its
    line vocabulary and (with ``open_world``) not close to a line that is."""
    if len(parsed) == 0:
        return 0.0
    return unlike_known_lines(detector, new_line_counts(detector, detector.masked(parsed).words)) / len(parsed)


def unlike_known_lines(detector: TinyLogBERTDetector, new_counts: dict[str, int]) -> int:
    """How many of the lines counted in ``new_counts`` (not in the vocabulary) match no known
    line either."""
    if not new_counts:
        return 0
    if not getattr(detector, "open_world", False):
        return sum(new_counts.values())
    texts = list(new_counts)
    matched = detector.matcher().match(texts).matched
    return int(sum(c for c, m in zip(new_counts.values(), matched) if not m))


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


# Drift: a log the model fits, but written by a newer release (reworded messages) or in a new
# state. Warned about when its lines are much less often known by name than the training log's,
# or when it flags sessions many times as often as the training log did.
DRIFT_NEW_SHARE = 0.10  # lines not known by name, beyond the training log's own share
DRIFT_FLAGGED_RATIO = 3.0  # flagged sessions, as a multiple of the training share ...
DRIFT_FLAGGED_MARGIN = 0.05  # ... and at least this much above it
MIN_DRIFT_LINES = 200
MIN_DRIFT_SESSIONS = 20
DRIFT_EXAMPLES = 3


@dataclass(frozen=True)
class NewMessage:
    """A normalised line the model does not know by name, with the known line it resembles."""

    text: str
    count: int
    nearest: str | None  # the most similar known line (None: no known lines)
    matched: bool  # close enough to be scored as ``nearest``


@dataclass(frozen=True)
class Drift:
    """How far a scored log is from what the model knows."""

    lines: int
    new_lines: int  # lines whose normalised text is not in the vocabulary
    matched_lines: int  # of those, lines close to a known line (scored as it)
    sessions: int
    flagged_sessions: int
    training_flagged_share: float
    examples: list[NewMessage]

    @property
    def new_share(self) -> float:
        return self.new_lines / self.lines if self.lines else 0.0

    @property
    def flagged_share(self) -> float:
        return self.flagged_sessions / self.sessions if self.sessions else 0.0


def measure_drift(detector: TinyLogBERTDetector, new_counts: dict[str, int], lines: int,
                  sessions: int, flagged_sessions: int) -> Drift:
    """``Drift`` from the counts of the log's lines that are not in the vocabulary."""
    texts = sorted(new_counts, key=lambda t: (-new_counts[t], t))
    matched_lines, examples = 0, []
    if texts and getattr(detector, "open_world", False):
        found = detector.matcher().match(texts)
        vocab = detector.line_vocab_
        for k, text in enumerate(texts):
            matched_lines += new_counts[text] * bool(found.matched[k])
            if k < DRIFT_EXAMPLES:
                j = int(found.nearest[k])
                examples.append(NewMessage(text, new_counts[text], vocab[j] if j >= 0 else None,
                                           bool(found.matched[k])))
    else:
        examples = [NewMessage(t, new_counts[t], None, False) for t in texts[:DRIFT_EXAMPLES]]
    return Drift(lines, sum(new_counts.values()), matched_lines, sessions, flagged_sessions,
                 float(getattr(detector, "calibration_", None).contamination
                       if getattr(detector, "calibration_", None) else 0.0), examples)


def _vocabulary_array(detector: TinyLogBERTDetector) -> pa.Array:
    """The line vocabulary as one Arrow array, built once per vocabulary (streaming asks for
    every chunk)."""
    cached = getattr(detector, "_vocabulary_array", None)
    if cached is None or cached[0] is not detector.line_vocab_:
        cached = (detector.line_vocab_,
                  pa.array(list(detector.line_vocab_), type=pa.large_string()))
        detector._vocabulary_array = cached
    return cached[1]


def new_line_counts(detector: TinyLogBERTDetector, words: pa.Array) -> dict[str, int]:
    """Counts of the normalised lines of ``words`` that are not in the line vocabulary."""
    vocab = _vocabulary_array(detector)
    words = pc.cast(words, pa.large_string())
    new = pc.filter(words, pc.invert(pc.is_in(words, value_set=vocab)))
    if len(new) == 0:
        return {}
    counted = pc.value_counts(new)
    return {v["values"]: int(v["counts"]) for v in counted.to_pylist() if v["values"] is not None}


def drift_warnings(detector: TinyLogBERTDetector, parsed: ParsedLog, result) -> list[str]:
    """``drift_warnings_for`` an in-memory score."""
    drift = measure_drift(detector, new_line_counts(detector, detector.masked(parsed).words), len(parsed),
                          result.n_sessions, result.n_anomalous_sessions)
    return drift_warnings_for(detector, drift, parsed.source)


def drift_warnings_for(detector: TinyLogBERTDetector, drift: Drift, source: str) -> list[str]:
    """One line when ``drift`` is far from what the model knows: what is new, the known
    messages the most common new ones resemble, and the fix (``tinylogbert adapt``)."""
    trained_new = _training_unknown_share(detector)
    many_new = (drift.lines >= MIN_DRIFT_LINES
                and drift.new_share > trained_new + DRIFT_NEW_SHARE
                and drift.new_share <= MAX_UNKNOWN_SHARE)  # beyond that: "does not fit"
    base = drift.training_flagged_share
    many_flagged = (drift.sessions >= MIN_DRIFT_SESSIONS
                    and drift.flagged_share > max(DRIFT_FLAGGED_RATIO * base,
                                                  base + DRIFT_FLAGGED_MARGIN))
    if not (many_new or many_flagged):
        return []
    parts = []
    if drift.new_lines:
        parts.append(f"{drift.new_share:.0%} of its lines are messages the model does not know "
                     f"by name ({drift.matched_lines / drift.lines:.0%} close to a known message "
                     f"and scored as it, {(drift.new_lines - drift.matched_lines) / drift.lines:.0%} "
                     f"unlike any)")
    parts.append(f"{drift.flagged_share:.1%} of sessions are flagged (training: {base:.1%})")
    examples = "; ".join(
        f"{e.text!r} ({e.count:,} line{'s' if e.count != 1 else ''}"
        + (f", {'scored as' if e.matched else 'nearest known'} {e.nearest!r})" if e.nearest
           else ")")
        for e in drift.examples)
    log = source if source and not source.startswith("<") and source != "request" else "LOG"
    return [(f"drift in {source}: {', '.join(parts)}"
             + (f"; most common new messages: {examples}" if examples else "")
             + f"; if a new release wrote this log, follow it: tinylogbert adapt --model "
               f"MODEL_DIR {log} --out NEW_MODEL_DIR")]


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
