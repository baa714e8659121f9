"""One scored log as the dashboard holds it: the result, where it came from, and its labels.

No Streamlit here: a ``Workspace`` is plain data kept in ``st.session_state``, so every page reads
the same object and the tests can build one directly. Moving the threshold re-judges the stored
scores (``ScoreResult.with_threshold``); nothing is ever rescored for it.
"""
from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime
from pathlib import Path
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
from tinylogbert.errors import LabelError, LogInputError
from tinylogbert.io.log_reader import GZIP_MAGIC, gunzip_bounded
from tinylogbert.reports.templates_table import ModelLines, TemplateIndex, template_index
from tinylogbert.reports.timeline import (
    Buckets,
    first_appearances,
    lacks_year,
    line_times,
    make_buckets,
)
from tinylogbert.scoring.evaluate import labels_from_rows
from tinylogbert.scoring.results import ScoreResult

from .score_settings import ScoreSettings

UNPARSED_EXAMPLES = 5
# A label file, once decompressed: far more than any label set needs.
MAX_LABEL_BYTES = 256 * 2**20


@dataclass(frozen=True)
class ParseReport:
    """How well the log parsed: shown on the Upload page instead of failing."""

    n_lines: int
    n_unparsed: int
    examples: list[tuple[int, str]]  # (line_no, text) of the first lines that did not parse
    format_description: str
    session_strategy: str
    replaced_bytes: bool = False  # invalid UTF-8 was replaced
    invalid_lines: int = 0  # lines that held invalid UTF-8
    # tinylogbert.scoring.fit_check: why the model does not fit this log (shown, and "train" opened)
    fit_warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSet:
    """Uploaded labels, already matched against the result's sessions or lines."""

    source: str
    level: str  # "session" or "line"
    n_labelled: int  # sessions (or lines) of this result that received a label
    n_anomalous: int
    n_total: int


@dataclass
class Workspace:
    """A scored log plus everything the pages need to show it."""

    source: str  # the uploaded file's name
    scored: ScoreResult  # exactly what core returned (model threshold, inline labels only)
    report: ParseReport
    settings: ScoreSettings
    model_path: str
    input_digest: str  # the uploaded bytes' digest
    input_key: str  # identifies the input bytes + settings + model that produced ``scored``
    model_threshold: float
    score_seconds: float = 0.0
    source_path: str | None = None  # where the log is on this machine (the bundled sample)
    time_format: str | None = None  # the format's strptime pattern for the timestamp column
    raw_lines: pa.Array | None = field(default=None, repr=False)  # the log's lines as read
    model_lines: ModelLines | None = field(default=None, repr=False)  # the model's line counts
    labelled: ScoreResult | None = None  # ``scored`` with uploaded labels attached
    labels: LabelSet | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex, init=False)  # a cache key
    _view: tuple[float, ScoreResult] | None = field(default=None, repr=False, init=False)

    @property
    def base(self) -> ScoreResult:
        return self.labelled if self.labelled is not None else self.scored

    def at(self, threshold: float) -> ScoreResult:
        """The result judged at ``threshold`` (memoised: pages ask many times per rerun)."""
        if self._view is None or self._view[0] != threshold:
            self._view = (threshold, judge_at(self.base, threshold))
        return self._view[1]

    def export_at(self, threshold: float) -> ScoreResult:
        """What ``tinylogbert score --threshold`` writes: no uploaded labels mixed in."""
        return judge_at(self.scored, threshold)

    @property
    def session_labels(self) -> np.ndarray | None:
        """0/1 per session (-1 unknown), or None when no session has a label."""
        labels = self.base.session_labels
        if labels is None or not (np.asarray(labels) >= 0).any():
            return None
        return np.asarray(labels)

    @property
    def has_labels(self) -> bool:
        return self.session_labels is not None

    @cached_property
    def top_line_messages(self) -> np.ndarray:
        """Per session, the text of its top line (highest line score; for hover and tables)."""
        messages = self.scored.line_table["message"].to_numpy(zero_copy_only=False)
        top = self.scored.session_table["top_line_no"].to_numpy() - 1  # line_no is 1-based
        return messages[top] if len(top) else np.array([], dtype=object)

    # ---- views that do not depend on the threshold: built once, on the first page that asks ----
    @cached_property
    def line_seconds(self) -> np.ndarray:
        """Seconds since the epoch per line (NaN where unreadable)."""
        return line_times(self.scored.line_table["timestamp"].to_pandas(), self.time_format,
                          self.assumed_year)

    @property
    def assumed_year(self) -> int | None:
        """The year given to timestamps that have none: the file's modification year when it
        is on this machine, else this year (``None`` when the format has a year)."""
        if not lacks_year(self.time_format):
            return None
        if self.source_path and Path(self.source_path).exists():
            return datetime.fromtimestamp(Path(self.source_path).stat().st_mtime).year
        return datetime.now().year

    @cached_property
    def templates(self) -> TemplateIndex:
        return template_index(self.scored)

    @cached_property
    def buckets(self) -> Buckets:
        return make_buckets(self.scored, self.line_seconds)

    @cached_property
    def new_templates(self) -> pd.DataFrame:
        """First appearance of each line outside the model's vocabulary."""
        known = self.model_lines.train_count if self.model_lines is not None else {}
        return first_appearances(self.scored, self.buckets, self.templates, known)

    def attach_labels(self, data: bytes, source: str) -> LabelSet:
        """Parse a label CSV and attach it to sessions, else to lines; raise ``LabelError``."""
        series = parse_label_bytes(data, source)
        try:
            labelled = self.scored.with_session_labels(series)
            aligned, level, total = labelled.session_labels, "session", self.scored.n_sessions
        except LabelError as session_error:
            try:
                labelled = self.scored.with_line_labels(series)
            except LabelError:
                raise session_error from None
            labelled = _sessions_from_line_labels(labelled)
            aligned, level, total = labelled.line_labels, "line", self.scored.n_lines
        known = aligned >= 0
        self.labelled = labelled
        self.labels = LabelSet(source, level, int(known.sum()), int((aligned == 1).sum()), total)
        self._view = None
        return self.labels

    def clear_labels(self) -> None:
        self.labelled, self.labels, self._view = None, None, None


def judge_at(result: ScoreResult, threshold: float) -> ScoreResult:
    """``result.with_threshold(threshold)``: flags, severity and grades judged at it (core's
    own rule, one definition for every front end)."""
    return result.with_threshold(threshold)


def _sessions_from_line_labels(result: ScoreResult) -> ScoreResult:
    """A session is anomalous when any of its labelled lines is (the convention core uses)."""
    lines = result.line_labels
    index = result.sessions
    member_labels = lines[index.members]
    session_labels = np.full(len(index), -1, dtype=np.int8)
    known = member_labels >= 0
    np.maximum.at(session_labels, index.member_session()[known], member_labels[known])
    series = pd.Series(session_labels, index=pd.Index(index.ids.astype(str), dtype=object))
    return result.with_session_labels(series[series >= 0])


def parse_label_bytes(data: bytes, source: str) -> pd.Series:
    """A label CSV (plain or gzip) from an upload -> Series of 0/1 by id."""
    if data.startswith(GZIP_MAGIC):
        try:  # bounded and linear in the number of gzip members, like log uploads
            data = gunzip_bounded(data, source, MAX_LABEL_BYTES)
        except LogInputError as exc:
            raise LabelError(str(exc)) from None
    if b"\x00" in data[:4096]:
        raise LabelError(f"{source}: this looks like a binary file, not a label CSV")
    text = data.decode("utf-8", errors="replace")
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise LabelError(f"{source}: not a CSV file ({exc})") from None
    return labels_from_rows(rows, source)
