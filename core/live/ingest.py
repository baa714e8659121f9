"""Live ingestion: lines pushed by log shippers go through a bounded queue to one worker thread
that feeds one ``SessionTracker`` per source stream (``service.name``/host), the tracker
``watch`` uses, so a session's score is the score ``score`` gives it. A line's trace/request ids
(an OTLP record's ``traceId``; a JSON record's ``trace_id``...) go with it to the tracker, which
sessions by them as ``score`` does for lines carrying ``trace_id``.

Why one worker thread: a tracker is not thread-safe and scoring is CPU-bound; the event loop only
queues. Why a bound in lines: memory stays bounded whatever the shippers send; a full queue
refuses the whole request (the route answers 429 with Retry-After, the shipper retries), so
nothing is dropped silently.

With a state folder (``serve --state``, ``live.state.IngestState``): each accepted request is
appended to a write-ahead log and fsynced before ``offer`` returns (so before the 2xx answer);
the worker snapshots every stream's open sessions every ``snapshot_seconds`` and at a clean stop
(the sessions stay open over it), and cuts the log to what the snapshot does not cover. A
restart (``recover``) loads the snapshot and replays the rest of the log, idle closes included,
so no line is scored twice, no session is lost or split, and the same events come out.
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
from tinylogbert.live.state import IngestState
from tinylogbert.sessions.grouping import SessionConfig

DEFAULT_QUEUE_LINES = 100_000
IDLE_CHECK_SECONDS = 0.5
SNAPSHOT_SECONDS = 5.0


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
    snapshot_seconds: float = SNAPSHOT_SECONDS  # with a state folder


@dataclass
class _Item:
    """A queued batch (``flush`` None) or a flush of one stream's (or, ``""``, every stream's)
    open sessions; ``n`` numbers it in the write-ahead log."""

    n: int
    batch: Batch | None = None
    flush: str | None = None

    @property
    def lines(self) -> int:
        return len(self.batch.lines) if self.batch is not None else 0


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

    def __init__(self, retry_after: int, reason: str, unavailable: bool = False) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.reason = reason
        self.unavailable = unavailable  # not the queue: the service cannot take lines (503)


class LiveIngest:
    """``offer`` lines (from the event loop); a worker thread scores them; ``on_events`` gets
    each step's events (JSON lines, alert outbox) in the worker thread."""

    def __init__(self, detector, config: IngestConfig,
                 on_events: Callable[[list[dict]], None] = lambda events: None,
                 metrics=None, on_warning: Callable[[str], None] | None = None,
                 prepare: Callable[[], None] = lambda: None,
                 state: IngestState | None = None, events_log=None) -> None:
        self.detector = detector
        self.config = config
        self.on_events = on_events
        self.metrics = metrics
        self.on_warning = on_warning
        self.prepare = prepare  # before each step (feedback marks made elsewhere apply)
        self.stats = IngestStats()
        self._queue: deque[_Item] = deque()
        self._queued = 0
        self._streams: dict[str, _Stream] = {}
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        # write-ahead log numbering: batches (and flushes) accepted, fed; idle closes logged
        self.state = state
        self.events_log = events_log  # .sync() -> size, .truncate(size): with ``state``
        self._numbered = 0
        self._fed = 0
        self._idles = 0
        self._saved = (0, 0)  # (fed, idles) of the last snapshot
        self._saved_at = time.monotonic()
        self._flushed: dict[int, int] = {}  # flush number -> sessions it closed
        self._forced: dict[str, int] = {}
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
                   - {i.batch.stream for i in self._queue if i.batch is not None})
            if len(self._streams) + len(new) > self.config.max_streams:
                raise QueueFull(30, f"more than {self.config.max_streams:,} source streams")
            items = [_Item(self._numbered + k, batch)
                     for k, batch in enumerate(b for b in batches if b.lines)]
            if items and self.state is not None:  # durable before the request is answered
                try:
                    self.state.append("b", items[0].n, len(items),
                                      [[i.batch.stream, i.batch.lines, i.batch.ids]
                                       for i in items])
                except OSError as exc:  # (a full disk): refused, so the shipper keeps them
                    raise QueueFull(30, f"cannot write the ingest log "
                                    f"{self.state.wal_file}: {exc.strerror or exc}",
                                    unavailable=True) from None
            self._numbered += len(items)
            self._queue.extend(items)
            self._queued += n
            self.stats.accepted_lines += n
            self._ensure_worker()
            self._cond.notify_all()
        return n

    def flush(self, source: str | None = None, timeout: float = 120.0) -> int:
        """Close and score the open sessions of ``source`` (every stream's when None) after the
        lines queued before; returns how many sessions closed. Logged like a batch, so a
        restart replays it in its place."""
        with self._cond:
            if self._stopping:
                raise QueueFull(5, "the service is stopping")
            if self.error:
                raise QueueFull(30, f"live scoring stopped: {self.error}")
            item = _Item(self._numbered, flush=source or "")
            if self.state is not None:
                try:
                    self.state.append("f", item.n, 1, {"source": item.flush})
                except OSError as exc:
                    raise QueueFull(30, f"cannot write the ingest log {self.state.wal_file}: "
                                    f"{exc.strerror or exc}", unavailable=True) from None
            self._numbered += 1
            self._queue.append(item)
            self._ensure_worker()
            self._cond.notify_all()
            deadline = time.monotonic() + timeout
            while item.n not in self._flushed:
                left = deadline - time.monotonic()
                if left <= 0 or self.error:
                    raise QueueFull(5, "the flush did not finish in time")
                self._cond.wait(left)
            return self._flushed.pop(item.n)

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
        """Score what is queued, then: with a state folder, save the open sessions (they stay
        open for the restart); without, close every one (their events go out). Stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        if self.state is not None:
            if not self.error:
                self._save()
            self.state.close()
            return
        for name, stream in self._streams.items():
            self._step(name, stream, stream.tracker.close_all, reason)

    def recover(self) -> tuple[int, int]:
        """At start, with a state folder (before the first ``offer``): the saved open sessions
        back, then the log's batches, flushes and idle closes the snapshot does not cover,
        replayed in their order; saved again. Returns (streams restored, batches replayed)."""
        saved = self.state.load_snapshot()
        if saved is not None:
            if self.events_log is not None and saved.get("events_size") is not None:
                self.events_log.truncate(saved["events_size"])  # written again, identically
            for name, data in saved["streams"].items():
                stream = self._new_stream(name)
                stream.tracker.load_state(data["tracker"])
                stream.next_line_no, stream.lines = data["next_line_no"], data["lines"]
                self.stats.streams[name] = stream.lines
                if self.metrics is not None:
                    self.metrics.open_sessions.labels(name).set(stream.tracker.open_sessions)
            self._fed, self._idles = saved["fed"], saved["idles"]
        items: list[_Item] = []
        idles = []
        for record in self.state.read_wal():
            if record.kind == "i":
                if record.n >= self._idles:
                    idles.append((record.n, record.count, record.payload))
            elif record.kind == "f":
                items.append(_Item(record.n, flush=record.payload["source"]))
            else:
                items += [_Item(record.n + k, Batch(*b)) for k, b in enumerate(record.payload)]
        items = sorted((i for i in items if i.n >= self._fed), key=lambda i: i.n)
        idles.sort(key=lambda x: x[0])
        try:
            replayed = self._replay(items, idles)
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001 -- as in the worker: said, new lines refused
            self.error = f"{type(exc).__name__}: {exc}"
            if self.on_warning:
                self.on_warning(f"live scoring stopped while replaying {self.state.wal_file}: "
                                f"{self.error}")
            return len(saved["streams"]) if saved else 0, 0
        self._numbered = self._fed
        self._flushed.clear()
        self._save()
        return len(saved["streams"]) if saved else 0, replayed

    def _replay(self, items: list[_Item], idles: list[tuple[int, int, dict]]) -> int:
        replayed = 0
        for item in [*items, None]:
            while idles and (item is None or idles[0][1] <= item.n):
                number, _, what = idles.pop(0)
                stream = self._streams.get(what["stream"])
                if stream is not None:
                    self._step(what["stream"], stream, stream.tracker.apply_idle, what["done"])
                self._idles = number + 1
            if item is not None:
                if item.n != self._fed:
                    raise ValueError(f"{self.state.wal_file}: batch {self._fed} is missing; "
                                     "remove the state folder's ingest files to start over")
                self._process(item)
                replayed += 1
        return replayed

    def stream_names(self) -> list[str]:
        return list(self._streams)

    def open_sessions(self) -> dict[str, int]:
        return {name: s.tracker.open_sessions for name, s in list(self._streams.items())}

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
                    self._process(item)
                if time.monotonic() - last_idle >= IDLE_CHECK_SECONDS:
                    last_idle = time.monotonic()
                    for name, stream in list(self._streams.items()):
                        self._step(name, stream, stream.tracker.close_idle, idle=True)
                if (self.state is not None and (self._fed, self._idles) != self._saved
                        and time.monotonic() - self._saved_at >= self.config.snapshot_seconds):
                    self._save()
            except Exception as exc:  # noqa: BLE001 -- reported, and new lines are refused
                self.error = f"{type(exc).__name__}: {exc}"
                if self.on_warning:
                    self.on_warning(f"live scoring stopped: {self.error}")
            finally:
                with self._cond:
                    if item is not None:
                        self._queued -= item.lines
                    self._busy = False
                    self._cond.notify_all()

    def _process(self, item: _Item) -> None:
        if item.batch is not None:
            self._feed(*item.batch)
        else:
            closed = 0
            for name, stream in list(self._streams.items()):
                if item.flush in ("", name):
                    before = stream.tracker.stats.sessions_closed
                    self._step(name, stream, stream.tracker.close_all, "flush")
                    closed += stream.tracker.stats.sessions_closed - before
            with self._cond:
                self._flushed[item.n] = closed
                self._cond.notify_all()
        self._fed = item.n + 1

    def _save(self) -> None:
        """Snapshot every stream's open sessions (and how far the events file and the log
        were), then cut the log; in the worker (or once it stopped)."""
        size = self.events_log.sync() if self.events_log is not None else None
        snapshot = {
            "fed": self._fed, "idles": self._idles, "events_size": size,
            "streams": {name: {"next_line_no": s.next_line_no, "lines": s.lines,
                               "tracker": s.tracker.state()}
                        for name, s in self._streams.items()},
        }
        with self._cond:  # no record is appended while the log is cut
            self.state.save(snapshot, self._fed, self._idles,
                            all_covered=self._fed == self._numbered)
        self._saved, self._saved_at = (self._fed, self._idles), time.monotonic()

    def _new_stream(self, name: str) -> _Stream:
        stream = self._streams[name] = _Stream(self._tracker(name))
        if self.metrics is not None:
            self.metrics.watch_source(name)
        return stream

    def _feed(self, name: str, lines: list[str], ids: list[dict[str, str]] | None) -> None:
        stream = self._streams.get(name)
        if stream is None:
            stream = self._new_stream(name)
        first = stream.next_line_no
        stream.next_line_no += len(lines)
        stream.lines += len(lines)
        self.stats.streams[name] = stream.lines
        self._step(name, stream, stream.tracker.feed, lines, first, None, ids)

    def _step(self, name: str, stream: _Stream, call, *args, idle: bool = False) -> None:
        from tinylogbert.live.metrics import step

        self.prepare()
        forced = stream.tracker.stats.forced_closed
        events = step(stream.tracker, self.metrics, name, call, *args)
        if idle and self.state is not None and stream.tracker.last_idle:
            # logged before its events go out: a replay closes the same sessions
            with self._cond:
                self.state.append("i", self._idles, self._fed,
                                  {"stream": name, "done": stream.tracker.last_idle})
            self._idles += 1
        if stream.tracker.stats.forced_closed > forced:
            self._said_forced(name, stream.tracker.stats.forced_closed)
        if events:
            self.on_events(events)

    def _said_forced(self, name: str, total: int) -> None:
        """Sessions closed before their end by the caps are counted (``/metrics``), marked in
        their events (``"closed": "forced"`` / ``"max-lines"``) and said once per stream."""
        if name not in self._forced and self.on_warning:
            c = self.config
            self.on_warning(f"stream {name}: open sessions over the limits (--max-open-sessions "
                            f"{c.max_open_sessions:,}, --max-session-lines "
                            f"{c.max_session_lines:,}): the oldest are closed and scored as "
                            "they stand (counted in tinylogbert_sessions_forced_closed_total)")
        self._forced[name] = total

    def _tracker(self, name: str) -> SessionTracker:
        c = self.config
        warn = self.on_warning
        if self.metrics is not None:
            warn = self.metrics.warning_hook(name, warn)
        return SessionTracker(
            self.detector, c.log_format, c.sessions, c.threshold, c.idle_timeout,
            c.max_open_sessions, c.max_session_lines, emit_all=c.emit_all,
            top_lines=c.top_lines, source=name, on_warning=warn,
            keep_text=self.state is not None,
        )
