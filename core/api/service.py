"""The scoring service: owns the detector (loaded once) and runs the pipeline in worker threads,
at most ``max_concurrency`` requests at a time, so the event loop (and ``/v1/health``) stays free.
"""
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import numpy as np
import pyarrow.compute as pc
from tinylogbert import pipeline
from tinylogbert.api.errors import limit_error
from tinylogbert.api.rendering import dumps, explained_sessions, json_rows, json_safe
from tinylogbert.api.schemas import LINE_COLUMNS, SESSION_COLUMNS, ScoreOptions, ScoreSummary
from tinylogbert.api.settings import ApiSettings
from tinylogbert.errors import LogTooLargeError
from tinylogbert.io.log_reader import (
    GZIP_MAGIC,
    LogLines,
    gunzip_bounded,
    read_log_bytes,
    read_log_lines,
)
from tinylogbert.scoring.feedback import FeedbackWatch
from tinylogbert.scoring.results import ScoreResult
from tinylogbert.sessions.grouping import SessionConfig

T = TypeVar("T")



@dataclass(frozen=True)
class ScoreJob:
    """One request's scoring options, validated and converted for ``core``."""

    log_format: str
    threshold: float | None
    sessions: SessionConfig | None
    top_lines: int

    @classmethod
    def from_options(cls, options: ScoreOptions) -> "ScoreJob":
        sessions = options.sessions.config() if options.sessions else None
        return cls(options.format, options.threshold, sessions, options.top_lines)


class ScoringService:
    """Owns the detector (loaded once) and runs scoring off the event loop, a few at a time."""

    def __init__(self, detector, settings: ApiSettings) -> None:
        self.detector = detector
        self.settings = settings
        # Marks written by another process (the CLI, the dashboard) apply without a restart.
        self.feedback = FeedbackWatch(settings.model_dir, getattr(detector, "feedback_", None))
        self.model_info = json_safe(detector.info())
        self.scoring = 0
        self.waiting = 0

    @cached_property
    def _slots(self) -> anyio.CapacityLimiter:
        # Made on first use, inside the server's event loop (older anyio needs a running loop).
        return anyio.CapacityLimiter(self.settings.max_concurrency)

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(*args)`` in a thread once a scoring slot is free."""
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.scoring += 1
        try:
            return await anyio.to_thread.run_sync(work, *args)
        finally:
            self.scoring -= 1
            self._slots.release()

    # The methods below run in a worker thread.
    def score_lines(self, lines: list[str], job: ScoreJob) -> bytes:
        log = read_log_lines(lines, source="request")
        result, warnings = self._score(log, job)
        return self._render_json(result, job, "request", warnings)

    def score_upload(self, data: bytes, filename: str, job: ScoreJob,
                     as_csv: bool) -> tuple[bytes, list[str]]:
        log = self._read_upload(data, filename)
        result, warnings = self._score(log, job)
        if as_csv:
            return result.lines_csv_bytes(), warnings
        return self._render_json(result, job, filename, warnings), warnings

    def _score(self, log: LogLines, job: ScoreJob) -> tuple[ScoreResult, list[str]]:
        """The result and the warnings a client must see with it (``scoring.fit_check``):
        invalid UTF-8 that was replaced, a model that does not fit the log."""
        # Responses carry no embeddings: skip the pass that makes them (half the work).
        options = pipeline.ScoreOptions(job.log_format, job.sessions, job.threshold,
                                        embeddings=False)
        self.detector.feedback_ = self.feedback.current()  # one attribute swap: old or new
        scored = pipeline.run(self.detector, log, options)
        return scored.result, scored.warnings

    def mark_normal(self, body: Any) -> bytes:
        """Record feedback in the model folder, and use it from the next request on."""
        from tinylogbert.scoring.feedback import mark_normal

        sessions = body.sessions.config() if body.sessions else None
        feedback, entries = mark_normal(  # under the folder's lock, like the CLI's
            self.settings.model_dir, read_log_lines(body.lines, source="request"), body.normal,
            source="request", log_format=body.format, sessions=sessions, match=body.match)
        self.detector.feedback_ = feedback
        return dumps({"marked": {sid: e.id for sid, e in zip(body.normal, entries)},
                       "entries": [e.to_dict() for e in feedback.entries]})

    def remove_feedback(self, entry_id: str) -> bytes:
        from tinylogbert.scoring.feedback import remove_entry

        feedback = remove_entry(self.settings.model_dir, entry_id)
        self.detector.feedback_ = feedback
        return dumps({"marked": {}, "entries": [e.to_dict() for e in feedback.entries]})

    def _read_upload(self, data: bytes, filename: str) -> LogLines:
        settings = self.settings
        if data.startswith(GZIP_MAGIC):
            try:  # the reading layer's decompressor: linear time, bounded by max_log_bytes
                data = gunzip_bounded(data, filename, settings.max_log_bytes)
            except LogTooLargeError as exc:
                raise limit_error(settings, "max_log_bytes", 413, "log_too_large", str(exc)) from None
        elif len(data) > settings.max_log_bytes:
            raise limit_error(settings, "max_log_bytes", 413, "log_too_large",
                              f"{filename} is {len(data):,} bytes")
        log = read_log_bytes(data, filename)
        if len(log) > settings.max_lines:
            raise limit_error(settings, "max_lines", 413, "too_many_lines",
                              f"{filename} has {len(log):,} lines")
        lengths = pc.utf8_length(log.lines).to_numpy(zero_copy_only=False)
        too_long = np.flatnonzero(lengths > settings.max_line_length)
        if len(too_long):
            first = int(too_long[0])
            raise limit_error(settings, "max_line_length", 422, "line_too_long",
                              f"line {first + 1} of {filename} has {int(lengths[first]):,} characters")
        return log

    def _render_json(self, result: ScoreResult, job: ScoreJob, source: str,
                     warnings: list[str]) -> bytes:
        explained = explained_sessions(result, self.settings.max_explained_sessions, job.top_lines)
        summary = result.summary()
        head = {
            "source": source,
            "threshold": result.threshold,
            "line_threshold": result.line_threshold,
            "format": result.format_name,
            "format_detail": result.format_description,
            "sessions_by": result.session_strategy,
            "summary": {k: summary[k] for k in ScoreSummary.model_fields},
            "explained_sessions": len(explained),
            "warnings": warnings,
        }
        top_lines = [{"top_lines": explained.get(i)} for i in range(result.n_sessions)]
        return b"".join([
            dumps(head)[:-1], b',"sessions":',
            *json_rows(result.session_table, SESSION_COLUMNS, top_lines),
            b',"lines":', *json_rows(result.line_table, LINE_COLUMNS), b"}",
        ])


