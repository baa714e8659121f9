"""``watch --state DIR``: resume after a restart (or a SIGKILL) exactly where the watch stopped.

What is saved after every step, atomically (a temporary file, fsync, rename): the followed file's
inode and the byte offset read so far, the next line number, the size of the events file at that
moment, and the tracker's open sessions (``SessionTracker.state``: the lines they hold, which
session holds which, those waiting for the format to be decided, the window grid, the time
windows' origin, the event a stack trace in the next lines would continue). A restart truncates
the events file to that size (what was written after the last save is written again,
identically), loads the sessions into a fresh tracker (``load_state``) and reads on from the
offset. So no line is scored twice, no session is lost or split, no event repeats.

Why the sessions themselves and not a replay from an earlier offset: sessions closed after the
earliest open one began would come back as partial sessions. Why not the held lines fed again
(what version 1 of the file saved, still read): a line of two sessions (an HDFS line naming two
blocks) would reopen the one already closed, and a stack trace's lines would lose their event.

``serve --state DIR`` (``IngestState``, below) has no file to read again: the pushed lines are
kept in a write-ahead log instead, and the snapshot holds each tracker's own state
(``SessionTracker.state``).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tinylogbert.io.atomic_output import fsync_folder

STATE_FILE = "watch-state.json"
VERSION = 2  # 1: the held lines, fed again at a restart (still read)


@dataclass
class SavedState:
    path: str
    inode: int | None
    offset: int
    next_line_no: int
    out_size: int | None
    tracker: dict | None = None  # ``SessionTracker.state()`` (version 2)
    # version 1: the held lines, the decided format's name, the time windows' origin
    format: str | None = None
    t0: float | None = None
    last_time: float | None = None
    held: list[tuple[int, str]] = field(default_factory=list)

    @property
    def n_held(self) -> int:
        return len(self.tracker["lines"]) if self.tracker is not None else len(self.held)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class WatchState:
    """Saves and loads ``SavedState`` (the tracker must keep its lines' text: ``keep_text``)."""

    def __init__(self, folder: str | Path, source: str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.file = self.folder / STATE_FILE
        self.source = str(Path(source).resolve())

    def load(self) -> SavedState | None:
        """The saved state of this source, or None (none yet, or of another file)."""
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.file}: unreadable state ({exc}); remove it to start over"
                             ) from None
        if not isinstance(data, dict) or data.get("version") not in (1, VERSION):
            raise ValueError(f"{self.file}: state of another version of tinylogbert; remove "
                             "the folder to start over")
        if data.get("path") != self.source:
            return None
        try:
            if data.pop("version") == 1:
                data["held"] = [(int(n), str(t)) for n, t in data.get("held", [])]
            return SavedState(**data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.file}: damaged state ({exc}); remove the folder to start "
                             "over") from None

    def save(self, tracker, inode: int | None, offset: int, next_line_no: int,
             out_size: int | None) -> None:
        state = {"version": VERSION, "path": self.source, "inode": inode, "offset": offset,
                 "next_line_no": next_line_no, "out_size": out_size,
                 "tracker": tracker.state()}
        _atomic_write(self.file, json.dumps(state, separators=(",", ":")))


def restore(tracker, feed, saved: SavedState) -> list[dict]:
    """Give a fresh tracker the saved open sessions; returns the events that closes (none when
    the tracker's options are those of the saved run). The restored lines are not counted
    again (the summary counts this run's lines and sessions)."""
    from tinylogbert.live.session_tracker import WatchStats

    if saved.tracker is not None:
        tracker.load_state(saved.tracker)
        tracker.stats = WatchStats()
        return []
    # version 1: the held lines, fed again in line order (contiguous runs together)
    held = saved.held
    if saved.t0 is not None:
        tracker._t0 = saved.t0
    if saved.last_time is not None:
        tracker._last_time = saved.last_time
    events: list[dict] = []
    run: list[str] = []
    start = None
    for n, text in held:
        if start is not None and n != start + len(run):
            events += feed(run, start)
            run, start = [], None
        if start is None:
            start = n
        run.append(text)
    if run:
        events += feed(run, start)
    tracker.stats.lines -= len(held)
    return events


# ---- serve --state: live ingestion (POST /v1/logs, /v1/ingest) ----
INGEST_STATE_FILE = "ingest-state.json"
INGEST_WAL_FILE = "ingest-wal.log"
INGEST_LOCK_FILE = "ingest.lock"
INGEST_VERSION = 1


@dataclass
class WalRecord:
    """One line of the write-ahead log. ``kind`` ``b``: ``count`` accepted batches numbered from
    ``n`` (payload: ``[[stream, lines, ids], ...]``); ``f``: a flush, batch number ``n``
    (payload: ``{"source": ...}``); ``i``: idle closes number ``n``, done when ``count``
    batches had been fed (payload: ``{"stream": ..., "done": tracker.last_idle}``)."""

    kind: str
    n: int
    count: int
    raw: str  # the payload's JSON, parsed on demand (a compaction only copies it)

    @property
    def payload(self):
        return json.loads(self.raw)


class IngestState:
    """``serve --state DIR``: the write-ahead log of accepted batches (appended and fsynced
    before the request is answered) and the snapshot of every stream's open sessions.

    Why a log and a snapshot: an acknowledged line must survive a SIGKILL, and the sessions it
    went into must come back whole; the snapshot bounds what a restart replays, and the log is
    cut to what the snapshot does not cover. Why idle closes are logged too: they depend on the
    clock, not on the lines, so a replay could not redo them otherwise."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.snapshot_file = self.folder / INGEST_STATE_FILE
        self.wal_file = self.folder / INGEST_WAL_FILE
        self._handle = None
        self._lock = _lock_folder(self.folder / INGEST_LOCK_FILE)

    # ---- reading (at start) ----
    def load_snapshot(self) -> dict | None:
        try:
            data = json.loads(self.snapshot_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.snapshot_file}: unreadable state ({exc}); remove it (and "
                             f"{self.wal_file.name}) to start over") from None
        if data.get("version") != INGEST_VERSION:
            raise ValueError(f"{self.snapshot_file}: state of another version; remove it (and "
                             f"{self.wal_file.name}) to start over")
        return data

    def read_wal(self) -> list[WalRecord]:
        """The log's records; a last line cut short (the process died while writing it, before
        its request was answered) is left out."""
        try:
            raw = self.wal_file.read_bytes()
        except FileNotFoundError:
            return []
        lines = raw.split(b"\n")
        records = []
        # The last piece has no newline after it: cut short while written, so never answered.
        for k, line in enumerate(lines[:-1]):
            try:
                kind, n, count, payload = line.decode("utf-8").split(" ", 3)
                if kind not in ("b", "f", "i"):
                    raise ValueError(kind)
                records.append(WalRecord(kind, int(n), int(count), payload))
            except ValueError:
                raise ValueError(f"{self.wal_file}: line {k + 1} is damaged; remove the file "
                                 "to start over (its lines are lost)") from None
        return records

    # ---- writing ----
    def append(self, kind: str, n: int, count: int, payload: object) -> None:
        """One record, durable when this returns (the caller holds the ingest lock)."""
        if self._handle is None:
            self._handle = open(self.wal_file, "ab")  # noqa: SIM115
            fsync_folder(self.folder)
        line = f"{kind} {n} {count} {json.dumps(payload, separators=(',', ':'))}\n"
        at = self._handle.tell()
        try:
            self._handle.write(line.encode("utf-8"))
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError:  # (a full disk): no half record stays in the way of the next one
            self._handle.close()
            self._handle = None
            with open(self.wal_file, "r+b") as handle:
                handle.truncate(at)
            raise

    def save(self, snapshot: dict, fed: int, idles: int, all_covered: bool = False) -> None:
        """Write the snapshot (atomically), then cut the log to the records it does not
        cover: batches numbered ``fed`` and on, idle closes numbered ``idles`` and on
        (``all_covered``: none, so the log is not even read)."""
        _atomic_write(self.snapshot_file, json.dumps({"version": INGEST_VERSION, **snapshot},
                                                     separators=(",", ":")))
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        keep = [] if all_covered else [
            r for r in self.read_wal() if (r.n >= idles if r.kind == "i" else r.n + r.count > fed)]
        text = "".join(f"{r.kind} {r.n} {r.count} {r.raw}\n" for r in keep)
        _atomic_write(self.wal_file, text)
        fsync_folder(self.folder)

    def close(self) -> None:
        """Close the log and let another process have the folder (as the process's end does)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _lock_folder(path: Path):
    """An exclusive lock on the folder for this process (two servers on one log would mix
    their batches); the kernel drops it when the process dies, SIGKILL included."""
    try:
        import fcntl
    except ImportError:  # (not POSIX: no lock)
        return None
    handle = open(path, "w")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise OSError(f"another process (a second serve?) uses {path.parent} as its state "
                      "folder") from None
    return handle
