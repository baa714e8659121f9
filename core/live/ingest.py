"""Live ingestion: lines pushed by log shippers go through a bounded queue to one worker thread
that feeds one ``SessionTracker`` per source stream (``service.name``/host), the tracker
``watch`` uses, so a session's score is the score ``score`` gives it. A line's trace/request ids
(an OTLP record's ``traceId``; a JSON record's ``trace_id``...) go with it to the tracker, which
sessions by them as ``score`` does for lines carrying ``trace_id``.

Why one worker thread: a tracker is not thread-safe and scoring is CPU-bound; the event loop only
queues. Why a bound in lines: memory stays bounded whatever the shippers send; a full queue
refuses the whole request (the route answers 429 with Retry-After, the shipper retries), so
nothing is dropped silently.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tinylogbert.live.session_tracker import (
    DEFAULT_MAX_OPEN_SESSIONS,
    DEFAULT_MAX_SESSION_LINES,
    SessionTracker,
)
from tinylogbert.live.shipper_payloads import Batch
from tinylogbert.sessions.grouping import SessionConfig

DEFAULT_QUEUE_LINES = 100_000
IDLE_CHECK_SECONDS = 0.5


@dataclass(frozen=True)
class IngestConfig:
    """How pushed lines are grouped and scored (as ``watch``'s options)."""

    log_format: str = "auto"
    sessions: SessionConfig | None = None
    threshold: float | None = None
    idle_timeout: float | None = None
    max_queue_lines: int = DEFAULT_QUEUE_LINES
    max_open_sessions: int = DEFAULT_MAX_OPEN_SESSIONS
    max_session_lines: int = DEFAULT_MAX_SESSION_LINES
    emit_all: bool = False
    top_lines: int = 3
    max_streams: int = 1000


@dataclass
class _Stream:
    tracker: SessionTracker
    next_line_no: int = 1
    lines: int = 0


@dataclass
class IngestStats:
    accepted_lines: int = 0
    refused_requests: int = 0
    streams: dict[str, int] = field(default_factory=dict)  # stream -> lines


class TooManyLines(Exception):
    """One request holds more lines than the whole queue: it can never be taken (413)."""


class QueueFull(Exception):
    """The queue cannot take these lines now; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int, reason: str) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.reason = reason


class LiveIngest:
    """``offer`` lines (from the event loop); a worker thread scores them; ``on_events`` gets
    each step's events (JSON lines, alert outbox) in the worker thread."""

    def __init__(self, detector, config: IngestConfig,
                 on_events: Callable[[list[dict]], None] = lambda events: None,
                 metrics=None, on_warning: Callable[[str], None] | None = None,
                 prepare: Callable[[], None] = lambda: None) -> None:
        self.detector = detector
        self.config = config
        self.on_events = on_events
        self.metrics = metrics
        self.on_warning = on_warning
        self.prepare = prepare  # before each step (feedback marks made elsewhere apply)
        self.stats = IngestStats()
        self._queue: deque[Batch] = deque()
        self._queued = 0
        self._streams: dict[str, _Stream] = {}
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        if metrics is not None:
            metrics.queue_depth.set_function(lambda: self._queued)

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def queued_lines(self) -> int:
        return self._queued

    def offer(self, batches: list[Batch]) -> int:
        """Queue ``(stream, lines, ids)`` batches, all or none; returns the lines queued.
        Raises ``QueueFull`` when they do not fit now (or the service is stopping),
        ``TooManyLines`` when they never will."""
        batches = [Batch(*batch) for batch in batches]  # (stream, lines) pairs too
        n = sum(len(batch.lines) for batch in batches)
        if n > self.config.max_queue_lines:
            raise TooManyLines(f"the request holds {n:,} lines, more than the ingest queue's "
                               f"{self.config.max_queue_lines:,} (serve --ingest-queue-lines); "
                               "send smaller batches")
        with self._cond:
            if self._stopping:
                raise QueueFull(5, "the service is stopping")
            if self.error:
                raise QueueFull(30, f"live scoring stopped: {self.error}")
            if self._queued + n > self.config.max_queue_lines:
                self.stats.refused_requests += 1
                raise QueueFull(max(1, min(30, round(self._queued / 20_000) + 1)),
                                f"the ingest queue is full ({self._queued:,} of "
                                f"{self.config.max_queue_lines:,} lines waiting)")
            new = ({b.stream for b in batches if b.stream not in self._streams}
                   - {b.stream for b in self._queue})
            if len(self._streams) + len(new) > self.config.max_streams:
                raise QueueFull(30, f"more than {self.config.max_streams:,} source streams")
            for batch in batches:
                if batch.lines:
                    self._queue.append(batch)
            self._queued += n
            self.stats.accepted_lines += n
            self._ensure_worker()
            self._cond.notify_all()
        return n

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until every queued line went through its tracker (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, reason: str = "signal") -> None:
        """Score what is queued, close every open session (their events go out), stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        for name, stream in self._streams.items():
            self._step(name, stream, stream.tracker.close_all, reason)

    def stream_names(self) -> list[str]:
        return list(self._streams)

    # ---- the worker thread ----
    def _ensure_worker(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="live-ingest", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        last_idle = time.monotonic()
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    if not self._cond.wait(IDLE_CHECK_SECONDS):
                        break
                if not self._queue and self._stopping:
                    return
                item = self._queue.popleft() if self._queue else None
                self._busy = item is not None
            try:
                if item is not None:
                    self._feed(*item)
                if time.monotonic() - last_idle >= IDLE_CHECK_SECONDS:
                    last_idle = time.monotonic()
                    for name, stream in list(self._streams.items()):
                        self._step(name, stream, stream.tracker.close_idle)
            except Exception as exc:  # noqa: BLE001 -- reported, and new lines are refused
                self.error = f"{type(exc).__name__}: {exc}"
                if self.on_warning:
                    self.on_warning(f"live scoring stopped: {self.error}")
            finally:
                with self._cond:
                    if item is not None:
                        self._queued -= len(item.lines)
                    self._busy = False
                    self._cond.notify_all()

    def _feed(self, name: str, lines: list[str], ids: list[dict[str, str]] | None) -> None:
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = _Stream(self._tracker(name))
            if self.metrics is not None:
                self.metrics.watch_source(name)
        first = stream.next_line_no
        stream.next_line_no += len(lines)
        stream.lines += len(lines)
        self.stats.streams[name] = stream.lines
        self._step(name, stream, stream.tracker.feed, lines, first, None, ids)

    def _step(self, name: str, stream: _Stream, call, *args) -> None:
        from tinylogbert.live.metrics import step

        self.prepare()
        events = step(stream.tracker, self.metrics, name, call, *args)
        if events:
            self.on_events(events)

    def _tracker(self, name: str) -> SessionTracker:
        c = self.config
        warn = self.on_warning
        if self.metrics is not None:
            warn = self.metrics.warning_hook(name, warn)
        return SessionTracker(
            self.detector, c.log_format, c.sessions, c.threshold, c.idle_timeout,
            c.max_open_sessions, c.max_session_lines, emit_all=c.emit_all,
            top_lines=c.top_lines, source=name, on_warning=warn,
        )
