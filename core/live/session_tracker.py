"""Live sessions: close sessions as they end, and score each closed one exactly as batch ``score``
would.

- ``SessionTracker`` takes lines incrementally and groups them with the rule ``build_sessions``
  uses (``grouping.resolve_rule``, decided once on the first lines): an id session stays open
  until no line of it has come for ``idle_timeout`` seconds (or the input ends); a window closes
  when it is full; lines without an id form sessions of ``ORPHAN_GROUP`` lines, as in batch;
- a stack trace's lines (``log_parser.continuation_marks``: frames, ``Caused by:``, a Python
  traceback, the exception line next to them) join the sessions of the event line before them,
  as ``score`` places them (``sessions.follow_events``): its trace-id sessions (none: lines
  without an id), or its windows when a window's end cuts the trace (a full window closes at
  the next event line). The last event is carried across ``feed`` calls and in ``state()``; an
  exception line that ends a feed waits for the next line, which says whether it continues;
- ids given with the lines (``feed(..., ids=)``: an OTLP record's trace id, a JSON record's
  ``trace_id``) are the lines' parsed fields, where the line's own are: the rule then follows
  them as batch follows a ``trace_id`` key, and a piece without them holds lines without an id;
- scoring: the closed sessions of one step become a small log of exactly their lines (original
  line numbers kept) with exactly their session index, scored by ``pipeline.score_parsed``. A
  session's score depends only on its own lines, so it equals the batch score of the same
  session.

Where live and batch sessions can differ: a session closed for being idle (or forced closed by
``max_open_sessions``) that gets more lines later is a second session with the same id; a window
closed for being idle restarts the window grid at the next line (a stack trace's lines after it
are then in the new grid's windows), and an exception line whose frame comes only after the idle
timeout is an event of its own; ``'auto'``, the format and the
time origin of time windows are decided on the first lines rather than on the whole file.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tinylogbert import pipeline
from tinylogbert.errors import FormatError, LogInputError
from tinylogbert.io.log_formats import FIELD_REFERENCE, LogFormat, get_format
from tinylogbert.io.log_parser import (
    ParsedLog,
    concat_fields,
    continuation_marks,
    continuing_rows,
    parse_log,
)
from tinylogbert.io.log_reader import LogLines
from tinylogbert.sessions.grouping import (
    ORPHAN_GROUP,
    SessionConfig,
    _from_membership,
    id_members,
    parse_times,
    resolve_rule,
)

# The format is detected on this many lines (or on what came first when lines stop coming).
DETECT_LINES = 200
DEFAULT_MAX_OPEN_SESSIONS = 10_000
DEFAULT_MAX_SESSION_LINES = 100_000


@dataclass
class _Session:
    sid: str
    lines: list[int] = field(default_factory=list)  # global line indices, in line order
    last_seen: float = 0.0
    reason: str = ""
    name: str = ""  # the session id when it is known at opening (time windows)
    # windows: the line numbers of their first and last line on the grid, which name them
    # (a stack trace's lines may have gone to the window of their event, or come from it)
    first_no: int | None = None
    last_no: int | None = None


@dataclass
class _Piece:
    """A parsed chunk; its rows stay until no open session holds one of them."""

    start: int  # global index of its first line
    parsed: ParsedLog
    live: int  # lines still held by an open session
    texts: list[str] | None = None  # the lines as fed (``keep_text``: for ``state()``)
    ids: list[dict[str, str]] | None = None


@dataclass
class WatchStats:
    lines: int = 0
    sessions_closed: int = 0
    forced_closed: int = 0  # closed by max_open_sessions / max_session_lines
    emitted: int = 0
    anomalous: int = 0


class SessionTracker:
    """Lines in (``feed``), events out: one dict per closed session (anomalous ones only unless
    ``emit_all``), scored as batch ``score`` scores it. See the module docstring."""

    def __init__(
        self, detector, log_format: str | LogFormat = "auto", sessions: SessionConfig | None = None,
        threshold: float | None = None, idle_timeout: float | None = None,
        max_open_sessions: int = DEFAULT_MAX_OPEN_SESSIONS,
        max_session_lines: int = DEFAULT_MAX_SESSION_LINES,
        emit_all: bool = False, top_lines: int = 3, source: str = "<input>",
        emit_lines: bool = False,
        clock: Callable[[], float] = time.monotonic,
        on_warning: Callable[[str], None] | None = None,
        keep_text: bool = False,
    ) -> None:
        if not (isinstance(log_format, str) and log_format.strip().lower() == "auto"):
            log_format = get_format(log_format)  # an unknown format fails now, not at line 1
        if max_open_sessions < 1 or max_session_lines < 1:
            raise LogInputError("--max-open-sessions and --max-session-lines must be at least 1")
        self.detector = detector
        self.log_format = log_format
        self.config = sessions or detector.sessions
        self.threshold = threshold
        self.idle_timeout = idle_timeout
        self.max_open_sessions = max_open_sessions
        self.max_session_lines = max_session_lines
        self.emit_all = emit_all
        self.emit_lines = emit_lines  # also an event per line over the line threshold
        self.top_lines = top_lines
        self.source = source
        self.clock = clock
        self.on_warning = on_warning
        self.stats = WatchStats()
        self.format: LogFormat | None = None
        self.by: str | None = None
        self.pattern: str | None = None
        self.strategy = ""
        self._pending: list[tuple[str, int, dict[str, str]]] = []  # before the format is known
        self._pending_since = 0.0
        self._pieces: list[_Piece] = []
        self._held: dict[int, int] = {}  # global line -> open sessions holding it
        self._next = 0  # global index of the next line
        self._open: OrderedDict[str, _Session] = OrderedDict()  # least recently fed first
        self._closed: list[_Session] = []
        self._orphans = _Session("")
        self._grid = 0  # lines since the window grid started
        self._last_full: int | None = None  # grid position of the last full window's start
        self._t0: float | None = None
        self._last_time = math.nan
        self._grid_seen = 0.0  # when the grid's (windows') last line came
        self._warned: set[str] = set()
        self._file = 1  # the file of the run the lines come from: 2 after the first rotation
        self.keep_text = keep_text  # pieces keep their lines' text and ids, so ``state()`` works
        self.last_idle: dict = {}  # what the last ``close_idle`` did (``apply_idle`` redoes it)
        # Stack traces: a line that continues the event before it (a frame, 'Caused by:')
        # joins that event's sessions (id sessions or windows), as in ``score``; these carry
        # the last event across ``feed`` calls (see ``_continuing``).
        self._log_start = True  # the next line is the input's first: it continues nothing
        self._strong_last = False  # the last line fed continues whatever follows it
        self._event_sids: list[str] = []  # the last event line's sessions ([]: no id)
        # the last line fed when it is an exception line ('java.lang.X: boom') after an event
        # line: it continues that event only if a frame follows, so it waits for the next line
        # (global index, its own sessions, when it came)
        self._deferred: tuple[int, list[str], float] | None = None

    # ---- public ----
    @property
    def open_sessions(self) -> int:
        return len(self._open) + bool(self._orphans.lines)

    def feed(self, lines: list[str], first_line_no: int, now: float | None = None,
             ids: list[dict[str, str]] | None = None) -> list[dict]:
        """Add lines numbered from ``first_line_no``; returns the events of what they closed.
        ``ids``: per line, the trace/request ids that came with it (``{"trace_id": ...}``)."""
        if not lines:
            return []
        now = self.clock() if now is None else now
        self.stats.lines += len(lines)
        if self.format is None:
            if not self._pending:
                self._pending_since = now
            self._pending += [(line, first_line_no + i, ids[i] if ids else {})
                              for i, line in enumerate(lines)]
            if len(self._pending) < DETECT_LINES:
                return []
            self._decide(now)
        else:
            self._add(lines, np.arange(first_line_no, first_line_no + len(lines)), now, ids=ids)
        return self._score_closed()

    def close_idle(self, now: float | None = None) -> list[dict]:
        """Close the sessions that had no line for ``idle_timeout`` seconds."""
        now = self.clock() if now is None else now
        done: dict = {}
        self.last_idle = done
        if self.format is None:
            if self._pending and now - self._pending_since >= min(1.0, self.idle_timeout or 1.0):
                self._decide(now)
                done["decide"] = True
            else:
                return []
        if self._deferred is not None and now - self._deferred[2] >= self.idle_timeout:
            self._settle(False)  # no line came after it: it is an event of its own
            done["deferred"] = True
        if self.by == "id":
            while self._open:
                first = next(iter(self._open.values()))
                if now - first.last_seen < self.idle_timeout:
                    break
                self._close(first.sid, "idle")
                done.setdefault("sids", []).append(first.sid)
        elif self._open and now - self._grid_seen >= self.idle_timeout:
            self._end_grid("idle")  # the window grid starts again at the next line
            done["grid"] = True
        if self._orphans.lines and now - self._orphans.last_seen >= self.idle_timeout:
            self._close_orphans("idle")
            done["orphans"] = True
        return self._score_closed()

    def apply_idle(self, done: dict) -> list[dict]:
        """Redo what a ``close_idle`` did (its ``last_idle``), whatever the clock says now: a
        replay after a restart closes exactly the sessions the first run closed for idleness."""
        if done.get("decide") and self.format is None and self._pending:
            self._decide(self.clock())
        if done.get("deferred") and self._deferred is not None:
            self._settle(False)
        for sid in done.get("sids", ()):
            if sid in self._open:
                self._close(sid, "idle")
        if done.get("grid") and self._open:
            self._end_grid("idle")
        if done.get("orphans") and self._orphans.lines:
            self._close_orphans("idle")
        return self._score_closed()

    def restart(self, event: str) -> list[dict]:
        """A new file (rotation, truncation): windows and the lines without an id end here;
        id sessions stay open (their next lines may be in the new file)."""
        if self.format is None:
            self._file += 1
            return []
        self._settle(False)  # the file ended after it
        self._log_start, self._strong_last, self._event_sids = True, False, []
        if self.by != "id":
            self._end_grid(event)
        self._close_orphans(event)
        events = self._score_closed()
        self._file += 1  # line numbers restart at 1: ids by line number get the file's prefix
        return events

    def close_all(self, reason: str = "end") -> list[dict]:
        """The input ended (or the watch is stopped): every open session closes."""
        if self.format is None:
            if not self._pending:
                return []
            self._decide(self.clock())
        self._settle(False)  # the input ended after it
        if self.by != "id":
            self._end_grid(reason)
        for sid in list(self._open):
            self._close(sid, reason)
        self._close_orphans(reason)
        return self._score_closed()

    def check_format(self, lines: list[str]) -> None:
        """Fail now (one-line ``FormatError``) when ``lines`` (a file's first lines) do not parse
        with the chosen format, whichever line the watch then starts from; nothing is decided
        or kept, the format is still decided on the first lines fed."""
        if lines:
            pipeline.parse(_log_lines(lines, self.source), self.log_format,
                           getattr(self.detector, "format_", None))

    # ---- a restart without loss (serve --state) ----
    def state(self) -> dict:
        """The open sessions as JSON-able data (``keep_text`` trackers): the lines they hold
        (number, text, ids), which session holds which, the window grid, the time origin, the
        decided format and rule. ``load_state`` on a fresh tracker gives the same open
        sessions, so the lines that follow close and score them as if no restart happened.
        Why the sessions themselves and not the held lines fed again: a line of two sessions
        (an HDFS line naming two blocks) would reopen the one already closed."""
        if not self.keep_text:
            raise ValueError("state() needs a tracker made with keep_text=True")
        held = np.array(sorted(self._held), dtype=np.int64)
        local = {g: i for i, g in enumerate(held.tolist())}
        rows = []
        starts = np.array([p.start for p in self._pieces], dtype=np.int64)
        which = np.searchsorted(starts, held, side="right") - 1
        for k in np.unique(which).tolist():
            piece = self._pieces[k]
            at = (held[which == k] - piece.start).tolist()
            numbers = piece.parsed.table["line_no"].to_numpy()
            rows += [[int(numbers[i]), piece.texts[i],
                      piece.ids[i] if piece.ids and piece.ids[i] else None] for i in at]
        fmt = None
        if self.format is not None:
            from dataclasses import asdict

            fmt = asdict(self.format)
            fmt.pop("groups")
        return {
            "format": fmt, "by": self.by, "pattern": self.pattern, "strategy": self.strategy,
            "idle_timeout": self.idle_timeout,
            "pending": [[t, n, i or None] for t, n, i in self._pending],
            "lines": rows,
            "open": [[s.sid, [local[g] for g in s.lines], s.name, s.first_no, s.last_no]
                     for s in self._open.values()],
            "orphans": [local[g] for g in self._orphans.lines],
            "grid": self._grid, "last_full": self._last_full, "t0": self._t0,
            "last_time": None if math.isnan(self._last_time) else self._last_time,
            "file": self._file, "warned": sorted(self._warned),
            "stats": dict(vars(self.stats)),
            # the last event a stack trace in the next lines would continue
            "trace": {"log_start": self._log_start, "strong_last": self._strong_last,
                      "event_sids": list(self._event_sids),
                      "deferred": None if self._deferred is None else
                      [local[self._deferred[0]], list(self._deferred[1])]},
        }

    def load_state(self, data: dict) -> None:
        """Take the open sessions ``state()`` saved (on a fresh tracker with the same options);
        they count as active from now on (their idle time starts again)."""
        now = self.clock()
        if data["format"] is not None:
            self.format = LogFormat(**data["format"])
        self.by, self.pattern, self.strategy = data["by"], data["pattern"], data["strategy"]
        if data["idle_timeout"] is not None:
            self.idle_timeout = float(data["idle_timeout"])
        self._pending = [(t, int(n), i or {}) for t, n, i in data["pending"]]
        self._pending_since = now
        rows = data["lines"]
        if rows:
            texts = [r[1] for r in rows]
            ids = [r[2] or {} for r in rows]
            numbers = np.array([r[0] for r in rows], dtype=np.int64)
            parsed = self._parse(texts, numbers, ids=ids if any(ids) else None)
            self._pieces = [_Piece(0, parsed, 0, texts, ids)]
        self._next = len(rows)
        self._open = OrderedDict(
            (sid, _Session(sid, list(lines), last_seen=now, name=name, first_no=bounds[0],
                           last_no=bounds[1]))
            for sid, lines, name, *bounds in (row + [None, None] for row in data["open"]))
        self._orphans = _Session("", list(data["orphans"]), last_seen=now)
        self._held = {}
        for s in [*self._open.values(), self._orphans]:
            for g in s.lines:
                self._hold(g)
        self._grid, self._last_full, self._t0 = data["grid"], data["last_full"], data["t0"]
        self._last_time = math.nan if data["last_time"] is None else data["last_time"]
        self._grid_seen = now
        self._file = data["file"]
        self._warned = set(data["warned"])
        self.stats = WatchStats(**data["stats"])
        trace = data.get("trace")  # (absent in states saved before stack traces were followed)
        if trace is not None:
            self._log_start, self._strong_last = trace["log_start"], trace["strong_last"]
            self._event_sids = list(trace["event_sids"])
            if trace["deferred"] is not None:
                g, own = trace["deferred"]
                self._hold(g)
                self._deferred = (g, list(own), now)
        elif rows or self.stats.lines:
            self._log_start = False

    # ---- grouping ----
    def _decide(self, now: float) -> None:
        """The format and the session rule, once, on the first lines (as batch decides)."""
        texts = [t for t, _, _ in self._pending]
        numbers = np.array([n for _, n, _ in self._pending], dtype=np.int64)
        ids = [i for _, _, i in self._pending]
        self._pending = []
        parsed = pipeline.parse(_log_lines(texts, self.source), self.log_format,
                                getattr(self.detector, "format_", None))
        self.format = parsed.format
        parsed = self._parse(texts, numbers, parsed, ids)
        self.by, self.pattern = resolve_rule(parsed, self.config)
        if self.idle_timeout is None:  # the format's own span of related lines
            self.idle_timeout = float(self.format.time_window)
        self._add(texts, numbers, now, parsed, ids)

    def _parse(self, lines: list[str], numbers: np.ndarray, parsed: ParsedLog | None = None,
               ids: list[dict[str, str]] | None = None) -> ParsedLog:
        parsed = parsed or parse_log(_log_lines(lines, self.source), self.format)
        table = parsed.table.set_column(0, "line_no", pa.array(numbers, type=pa.int64()))
        # (``event_of``: the rule is decided as ``score`` decides it, a stack trace's lines
        # left out of the share of lines carrying an id)
        return ParsedLog(table=table, words=parsed.words, format=parsed.format,
                         detection=parsed.detection, source=self.source,
                         fields=with_ids(parsed.fields, ids, len(parsed)),
                         event_of=parsed.event_of)

    def _add(self, lines: list[str], numbers: np.ndarray, now: float,
             parsed: ParsedLog | None = None, ids: list[dict[str, str]] | None = None) -> None:
        if parsed is None:  # (``_decide`` gives the first lines parsed, with their ids)
            parsed = self._parse(lines, numbers, ids=ids)
        start, n = self._next, len(parsed)
        self._next += n
        piece = _Piece(start, parsed, 0)
        if self.keep_text:
            piece.texts = list(lines)
            piece.ids = list(ids) if ids else None
        self._pieces.append(piece)
        if self.by == "id":
            line_idx, sid, self.strategy = self._id_members(parsed)
            sid = sid.to_pylist() if isinstance(sid, (pa.Array, pa.ChunkedArray)) else list(sid)
            order = np.argsort(line_idx, kind="stable")
            per_line: dict[int, list[str]] = {}
            for j in order:
                per_line.setdefault(int(line_idx[j]), []).append(sid[j])
            cont, waits = self._continuing(parsed)
            for i in range(n):
                if cont is not None and cont[i]:  # a stack trace's line: its event's sessions
                    self._place(start + i, self._event_sids, now)
                elif waits and i == n - 1:  # decided by the next line (``_settle``)
                    self._hold(start + i)
                    self._deferred = (start + i, per_line.get(i, []), now)
                else:
                    self._event_sids = per_line.get(i, [])
                    self._place(start + i, self._event_sids, now)
        elif self.by == "time":
            self._add_timed(parsed, start, now)
        else:
            size = self.config.window_size or self.format.window_size
            step = self.config.window_step or size
            if step > size:  # the batch rule's own error
                from tinylogbert.sessions.grouping import _by_count
                _by_count(size + 1, size, step, parsed)
            self.strategy = f"windows of {size} lines (step {step})"
            cont, waits = self._continuing(parsed)
            numbers = parsed.table["line_no"].to_numpy()
            for i in range(n):
                g, at = start + i, self._grid
                if at % step == 0:
                    self._open[f"@{at}"] = _Session(f"@{at}", last_seen=now,
                                                    first_no=int(numbers[i]))
                self._grid += 1
                self._grid_seen = now
                own = []  # the windows whose stretch of the grid this line is on
                for key, session in self._open.items():
                    if int(key[1:]) + size > at:
                        own.append(key)
                        session.last_no = int(numbers[i])
                        if int(key[1:]) + size == at + 1:
                            self._last_full = int(key[1:])
                if cont is not None and cont[i]:  # a stack trace's line: its event's windows
                    self._window_line(g, own, now, continues=True)
                elif waits and i == n - 1:  # decided by the next line (``_settle``)
                    self._hold(g)
                    self._deferred = (g, own, now)
                else:
                    self._window_line(g, own, now, continues=False)
        self._release_pieces()
        self._enforce_cap()

    def _id_members(self, parsed: ParsedLog):
        """``id_members``; a piece without the id field (no line of it came with a trace id)
        holds lines without an id, as batch's lines without the key are."""
        try:
            return id_members(parsed, self.pattern)
        except FormatError:
            field = FIELD_REFERENCE.match(self.pattern or "")
            if not field:
                raise
            return (np.zeros(0, dtype=np.int64), pa.array([], type=pa.large_string()),
                    f"id field <{field.group(1)}>")

    def _add_timed(self, parsed: ParsedLog, start: int, now: float) -> None:
        seconds = parse_times(parsed)
        span = self.config.time_window or self.format.time_window
        step = self.config.time_step or span
        if step > span:
            from tinylogbert.errors import FormatError
            raise FormatError(f"time step ({step:g}s) is larger than the time window ({span:g}s): "
                              "lines between windows would be left out")
        self.strategy = f"time windows of {span:g}s (step {step:g}s)"
        self._grid_seen = now
        for i, t in enumerate(seconds):
            if math.isnan(t):
                t = self._last_time  # a line without a time goes with the line before it
            if math.isnan(t):  # nothing timed yet: it waits for the first timed line
                self._hold(start + i)
                self._orphans.lines.append(start + i)
                continue
            self._last_time = t
            if self._t0 is None:
                self._t0 = t
            # log time passed a window's end: it is complete
            for key in [k for k in self._open if t >= self._t0 + int(k[1:]) * step + span]:
                self._close(key, "full")
            last = math.floor((t - self._t0) / step)
            keys = [f"#{k}" for k in range(last, last - math.ceil(span / step), -1)
                    if k >= 0 and t < self._t0 + k * step + span]
            waiting, self._orphans.lines = self._orphans.lines, []
            for key in reversed(keys):
                if key not in self._open:  # named as batch names it
                    stamp = pd.to_datetime(self._t0 + int(key[1:]) * step, unit="s")
                    self._open[key] = _Session(key, last_seen=now,
                                               name="T" + stamp.strftime("%Y-%m-%dT%H:%M:%S"))
                for g in waiting:
                    self._append(key, g, now)
                self._append(key, start + i, now)
            for g in waiting:
                self._held[g] -= 1  # held once while waiting
                if not self._held[g]:
                    del self._held[g]

    def _continuing(self, parsed: ParsedLog) -> tuple[np.ndarray | None, bool]:
        """Rows of this piece that continue the event before them, as ``score`` marks them on
        the whole input (None: none can), and whether its last row waits for the next line.
        First settles the line that waited at the end of the piece before (the first row here
        decides it). Why the wait: an exception line continues an event only when a frame
        stands next to it, and a batch may end between the two."""
        marks = continuation_marks(parsed.table, parsed.format, parsed.fields)
        self._settle(marks is not None and bool(marks.strong[0]))
        before, self._strong_last = self._strong_last, marks is not None and bool(marks.strong[-1])
        log_start, self._log_start = self._log_start, False
        if marks is None:
            return None, False
        cont = continuing_rows(marks, before, False, log_start=log_start)
        n = len(cont)
        waits = bool(marks.exception[-1]) and not cont[-1] and not (log_start and n == 1)
        return cont, waits

    def _settle(self, continues: bool) -> None:
        """Place the line that waited for the next one: in its event's sessions when that line
        continues the event (``continues``), else as an event of its own."""
        if self._deferred is None:
            return
        g, own, when = self._deferred
        self._deferred = None
        if self.by == "window":
            self._window_line(g, own, when, continues)
        else:
            if not continues:
                self._event_sids = own
            self._place(g, self._event_sids, when)
        self._unhold(g)  # the hold it had while waiting

    def _window_line(self, g: int, own: list[str], now: float, continues: bool) -> None:
        """Line ``g`` into windows, as ``score`` places it: an event line into its own
        windows (``own``), closing the full ones it is not in (no more of their event's trace
        can come); a stack trace's line into its event's windows (its own when none is open:
        the grid started again after it)."""
        if continues:
            keys = [k for k in self._event_sids if k in self._open] or own
        else:
            for key in [k for k in self._open if k not in own]:
                self._close(key, "full")
            keys = self._event_sids = own
        open_keys = [k for k in keys if k in self._open]  # (--max-open-sessions/-lines)
        for key in open_keys or keys[-1:] or [f"@{self._grid - 1}"]:
            self._append(key, g, now)  # (a closed one opens again: no line is left out)

    def _place(self, g: int, sids: list[str], now: float) -> None:
        """Line ``g`` into the id sessions ``sids``, or with the lines without an id."""
        for s in sids:
            self._append(s, g, now)
        if not sids:
            self._hold(g)
            self._orphans.lines.append(g)
            self._orphans.last_seen = now
            if len(self._orphans.lines) >= ORPHAN_GROUP:
                self._close_orphans("full")

    def _hold(self, g: int) -> None:
        self._held[g] = self._held.get(g, 0) + 1

    def _append(self, sid: str, g: int, now: float) -> None:
        session = self._open.get(sid)
        if session is None:
            session = self._open[sid] = _Session(sid)
        else:
            self._open.move_to_end(sid)
        session.lines.append(g)
        session.last_seen = now
        self._hold(g)
        if len(session.lines) >= self.max_session_lines:
            self._close(sid, "max-lines")
            self.stats.forced_closed += 1

    def _enforce_cap(self) -> None:
        while self.open_sessions > self.max_open_sessions and self._open:
            self._close(next(iter(self._open)), "forced")
            self.stats.forced_closed += 1

    def _close(self, sid: str, reason: str) -> None:
        session = self._open.pop(sid)
        session.reason = reason
        self._closed.append(session)

    def _close_orphans(self, reason: str) -> None:
        if self.by == "time" or not self._orphans.lines:
            return
        session, self._orphans = self._orphans, _Session("", last_seen=self._orphans.last_seen)
        session.reason = reason
        session.sid = "no-id:"  # named once its line numbers are known
        self._closed.append(session)

    def _end_grid(self, reason: str) -> None:
        """The end of the input for windows: what batch's last, shorter window would be."""
        if self.by == "time":
            for key in list(self._open):
                self._close(key, reason)
            return
        size = self.config.window_size or self.format.window_size
        step = self.config.window_step or size
        for key in [k for k in self._open if int(k[1:]) + size <= self._grid]:
            self._close(key, "full")  # full, it waited for a stack trace's next line
        keep = 0 if self._last_full is None else (
            self._last_full + step if self._grid > self._last_full + size else None)
        for key in list(self._open):
            if keep is not None and int(key[1:]) == keep:
                self._close(key, reason)
            else:  # its lines are all in the last full window: batch has no such window
                for g in self._open.pop(key).lines:
                    self._unhold(g)
        self._grid, self._last_full, self._event_sids = 0, None, []
        self._release_pieces()

    def _unhold(self, g: int) -> None:
        self._held[g] -= 1
        if not self._held[g]:
            del self._held[g]

    def _release_pieces(self) -> None:
        """Drop the parsed chunks no open session holds a line of (memory stays bounded)."""
        oldest = min(self._held) if self._held else self._next
        pending = min((g for s in self._closed for g in s.lines), default=self._next)
        keep_from = min(oldest, pending)
        while self._pieces and self._pieces[0].start + len(self._pieces[0].parsed) <= keep_from:
            self._pieces.pop(0)

    # ---- scoring ----
    def _score_closed(self) -> list[dict]:
        closed, self._closed = self._closed, []
        events: list[dict] = []
        while closed:  # one batch per distinct id (a reopened id may close twice in one step)
            batch, seen, rest = [], set(), []
            for s in closed:
                key = self._session_id(s)
                (rest if key in seen else batch).append(s)
                seen.add(key)
            events += self._score(batch)
            closed = rest
        self._release_pieces()
        return events

    def _rows(self, globals_: np.ndarray) -> ParsedLog:
        tables, words, fields = [], [], []
        starts = np.array([p.start for p in self._pieces])
        which = np.searchsorted(starts, globals_, side="right") - 1
        for k in np.unique(which):
            piece = self._pieces[k]
            local = pa.array(globals_[which == k] - piece.start)
            tables.append(piece.parsed.table.take(local))
            words.append(piece.parsed.words.take(local))
            fields.append(None if piece.parsed.fields is None else
                          piece.parsed.fields.take(local))
        return ParsedLog(
            table=pa.concat_tables(tables).combine_chunks(), words=pa.concat_arrays(words),
            format=self.format, detection=self._pieces[0].parsed.detection, source=self.source,
            fields=concat_fields(fields, [t.num_rows for t in tables]),
        )

    def _line_no(self, g: int) -> int:
        starts = [p.start for p in self._pieces]
        k = int(np.searchsorted(starts, g, side="right") - 1)
        piece = self._pieces[k]
        return int(piece.parsed.table["line_no"][g - piece.start].as_py())

    def _session_id(self, s: _Session) -> str:
        """Batch's id; ids made of line numbers (windows, lines without an id) are prefixed
        with ``fileN:`` from the second file of the run on (after a rotation or truncation the
        numbers start at 1 again), so that no id repeats within one watch."""
        prefix = f"file{self._file}:" if self._file > 1 else ""
        if s.sid == "no-id:":
            s.sid = f"{prefix}no-id:{self._line_no(s.lines[0])}-{self._line_no(s.lines[-1])}"
        elif s.sid.startswith("@"):
            first = s.first_no if s.first_no is not None else self._line_no(s.lines[0])
            last = s.last_no if s.last_no is not None else self._line_no(s.lines[-1])
            s.sid = f"{prefix}L{first}-{last}"
        elif s.name:
            s.sid = s.name
        return s.sid

    def _score(self, sessions: list[_Session]) -> list[dict]:
        sessions = [s for s in sessions if s.lines]
        if not sessions:
            return []
        globals_ = np.unique(np.concatenate([np.asarray(s.lines, dtype=np.int64)
                                             for s in sessions]))
        parsed = self._rows(globals_)
        line_idx = np.concatenate([np.searchsorted(globals_, s.lines) for s in sessions])
        sid = np.repeat(np.array([s.sid for s in sessions], dtype=object),
                        [len(s.lines) for s in sessions])
        parsed.session_cache[self.config] = _from_membership(
            line_idx.astype(np.int64), sid, len(parsed), self.strategy)
        scored = pipeline.score_parsed(
            self.detector, parsed, None,
            pipeline.ScoreOptions(self.format, self.config, self.threshold, embeddings=False))
        for message in scored.warnings:
            # A drift warning's figures change with every batch: it is said once per run.
            key = "drift" if message.startswith("drift in ") else message
            if key not in self._warned and self.on_warning:
                self._warned.add(key)
                self.on_warning(message)
        result = scored.result
        rows = result.session_table.to_pylist()
        by_id = {str(r["session_id"]): i for i, r in enumerate(rows)}
        line_no = parsed.table["line_no"].to_numpy()
        stamps = parsed.table["timestamp"]
        events = []
        for s in sessions:
            self.stats.sessions_closed += 1
            for g in s.lines:
                if g in self._held:
                    self._unhold(g)
            i = by_id[s.sid]
            row = rows[i]
            if row["is_anomaly"]:
                self.stats.anomalous += 1
            if not (row["is_anomaly"] or self.emit_all):
                continue
            first, last = int(np.searchsorted(globals_, s.lines[0])), \
                int(np.searchsorted(globals_, s.lines[-1]))
            event = {
                "event": "session",
                "session_id": s.sid,
                "score": row["score"],
                "is_anomaly": bool(row["is_anomaly"]),
                "severity": row.get("severity"),
                "grade": row.get("grade"),
                "suppressed_by": row.get("suppressed_by") or None,  # feedback entry, if any
                **{k: v for k, v in row.items() if k.startswith("p_")},
                "threshold": result.threshold,
                "n_lines": row["n_lines"],
                "first_line_no": int(line_no[first]),
                "last_line_no": int(line_no[last]),
                "first_time": stamps[first].as_py(),
                "last_time": stamps[last].as_py(),
                "closed": s.reason,
                "top_line_no": row["top_line_no"],
                # named as SESSIONS.csv names them (z_rarity, z_context, z_top)
                "components": {k: v for k, v in row.items()
                               if k.startswith("z_") and v is not None and math.isfinite(v)},
                "top_lines": [
                    {"line_no": r.line_no, "score": round(r.score, 4),
                     "surprisal": round(r.surprisal, 4), "message": r.message,
                     "expected": r.expected}
                    for r in result.explain(i, k=self.top_lines).lines
                ],
                "source": self.source,
            }
            events.append(event)
        if self.emit_lines:
            events.extend(self._line_events(result, sessions, stamps))
        self.stats.emitted += len(events)
        return events


    def _line_events(self, result, sessions: list[_Session], stamps) -> list[dict]:
        """One event per line over the model's line threshold, whatever its session's score: a
        single bad line (``fatal: Cannot bind any address.``) in an ordinary session is still
        reported. Same keys as a session event, with ``"event": "line"`` and the line threshold."""
        table = result.line_table
        over = np.flatnonzero(table["score"].to_numpy() > result.line_threshold)
        closed = {s.sid: s.reason for s in sessions}
        events = []
        for i in over.tolist():
            row = {name: table[name][i].as_py() for name in
                   ("line_no", "session_id", "score", "message", "session_score")}
            sid = str(row["session_id"]) if row["session_id"] is not None else None
            events.append({
                "event": "line",
                "session_id": sid,
                "score": round(float(row["score"]), 6),
                "is_anomaly": True,
                "threshold": result.line_threshold,
                "session_score": row["session_score"],
                "n_lines": 1,
                "first_line_no": int(row["line_no"]),
                "last_line_no": int(row["line_no"]),
                "first_time": stamps[i].as_py(),
                "last_time": stamps[i].as_py(),
                "closed": closed.get(sid),
                "top_line_no": int(row["line_no"]),
                "message": row["message"],
                "source": self.source,
            })
        return events


def with_ids(fields: pa.Table | None, ids: list[dict[str, str]] | None,
             n: int) -> pa.Table | None:
    """``fields`` with the ids that came with each line (a column per id key), which win over
    a field of the same name the line's text has (an OTLP record's traceId is its trace)."""
    keys = list(dict.fromkeys(key for line in ids or () for key in line))
    if not keys:
        return fields
    fields = fields if fields is not None else pa.table({"_": pa.nulls(n)}).drop_columns(["_"])
    for key in keys:
        column = pa.array([line.get(key) for line in ids], type=pa.large_string())
        same = [name for name in fields.column_names if name.lower() == key.lower()]
        if same:
            at = fields.schema.get_field_index(same[0])
            own = pc.cast(fields[same[0]], pa.large_string())
            fields = fields.set_column(at, same[0], pc.coalesce(column, own))
        else:
            fields = fields.append_column(key, column)
    return fields


def _log_lines(lines: list[str], source: str) -> LogLines:
    cleaned = [line.replace("\r", " ").replace("\n", " ") for line in lines]
    return LogLines(pa.array(cleaned, type=pa.large_string()), source=source)
