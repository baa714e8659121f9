"""A durable outbox for alerts: at-least-once delivery with retries and backoff, de-duplicated.

Why sqlite (stdlib): one file in the state folder, transactions that survive a SIGKILL, and a
primary key (sink + the session's fingerprint) that makes enqueuing the same session twice, after
a restart or a replay, a no-op. A sink outage only delays: rows wait with a growing ``next_at``
(exponential backoff with jitter, capped), and a restart picks them up. A row is given up (counted
as failed) only when the sink answers a permanent error (a 4xx other than 408/429) or after
``max_age`` seconds.
"""
from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tinylogbert.errors import OutputError
from tinylogbert.live.alert_sinks import DeliveryError, fingerprint, wants_alert

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT PRIMARY KEY,      -- sink name + ':' + the session's fingerprint
    sink TEXT NOT NULL,
    body BLOB NOT NULL,        -- built once, at enqueue time
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',  -- pending, delivered, failed
    last_error TEXT
)"""


@dataclass(frozen=True)
class RetryPolicy:
    first_delay: float = 1.0
    max_delay: float = 300.0
    max_age: float = 24 * 3600.0

    def delay(self, attempts: int) -> float:
        base = min(self.max_delay, self.first_delay * 2 ** max(0, attempts - 1))
        return base * random.uniform(0.8, 1.2)


SEND_JOIN = 15.0  # a send in flight finishes (its timeout is 10 s) before the file closes
OUTBOX_FILE = "outbox.sqlite"


class Outbox:
    """``add`` events (any thread); a delivery thread sends what is due, sink by sink."""

    def __init__(self, path: Path, sinks: list, metrics=None, policy: RetryPolicy = RetryPolicy(),
                 on_warning: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sinks = {s.name: s for s in sinks}
        self.metrics = metrics
        self.policy = policy
        self.on_warning = on_warning
        self.clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed alert survives power loss
        self._db.execute(SCHEMA)
        if metrics is not None:
            metrics.outbox_pending.set_function(self.pending)

    def add(self, events: list[dict]) -> int:
        """Enqueue an alert per sink for each anomalous closed session; returns how many were
        new (a session already in the outbox, delivered or not, is not added again)."""
        now = self.clock()
        stamp = datetime.fromtimestamp(now, timezone.utc)
        rows = []
        for event in events:
            if not wants_alert(event):
                continue
            print_ = fingerprint(event)
            for name, sink in self.sinks.items():
                rows.append((f"{name}:{print_}", name, sink.body(event, print_, stamp), now, now))
        if not rows:
            return 0
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR IGNORE INTO outbox (key, sink, body, created, "
                                 "next_at) VALUES (?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
            added = self._db.total_changes - before
        self._wake.set()
        return added

    def pending(self) -> int:
        with self._lock:
            if self._closed:
                return 0
            return self._db.execute(
                "SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state"))

    def deliver_due(self) -> int:
        """One pass: send every due row once; returns how many were delivered."""
        now = self.clock()
        with self._lock:
            due = self._db.execute(
                "SELECT key, sink, body, attempts, created FROM outbox WHERE state = 'pending' "
                "AND next_at <= ? ORDER BY created, key", (now,)).fetchall()
        delivered = 0
        down: set[str] = set()  # a sink that just failed is not tried again in this pass
        for key, sink_name, body, attempts, created in due:
            sink = self.sinks.get(sink_name)
            if sink is None or sink_name in down:
                continue
            try:
                sink.send(body, key)
            except DeliveryError as exc:
                down.add(sink_name)
                self._failed(key, sink_name, attempts + 1, created, exc)
                continue
            self._update("UPDATE outbox SET state = 'delivered', attempts = ?, last_error = NULL "
                         "WHERE key = ?", (attempts + 1, key))
            self._count(sink_name, "delivered")
            delivered += 1
        return delivered

    def _failed(self, key: str, sink: str, attempts: int, created: float,
                exc: DeliveryError) -> None:
        now = self.clock()
        if exc.permanent or now - created > self.policy.max_age:
            self._update("UPDATE outbox SET state = 'failed', attempts = ?, last_error = ? "
                         "WHERE key = ?", (attempts, str(exc), key))
            self._count(sink, "failed")
            if self.on_warning:
                self.on_warning(f"alert {key} given up after {attempts} tries: {exc}")
            return
        self._update("UPDATE outbox SET attempts = ?, next_at = ?, last_error = ? WHERE key = ?",
                     (attempts, now + self.policy.delay(attempts), str(exc), key))
        self._count(sink, "retried")
        if attempts == 1 and self.on_warning:
            self.on_warning(f"alert sink {sink} failed ({exc}); retrying with backoff")

    def _update(self, sql: str, args: tuple) -> None:
        with self._lock:
            self._db.execute(sql, args)

    def _count(self, sink: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.alerts.labels(sink, outcome).inc()

    # ---- the delivery thread ----
    def start(self) -> Outbox:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alert-outbox", daemon=True)
            self._thread.start()
        return self

    def _next_due(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(next_at) FROM outbox WHERE state = 'pending'"
                                   ).fetchone()
        return row[0]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.deliver_due()
            due = self._next_due()
            wait = 5.0 if due is None else min(5.0, max(0.05, due - self.clock()))
            self._wake.wait(wait)
            self._wake.clear()

    def close(self, flush_timeout: float = 5.0) -> None:
        """Try what is due once more within ``flush_timeout`` s; the rest waits in the file for
        the next start."""
        deadline = time.monotonic() + flush_timeout
        while self._thread is not None and time.monotonic() < deadline and self._has_due():
            self._wake.set()
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=SEND_JOIN)
        with self._lock:
            self._closed = True
            self._db.close()

    def _has_due(self) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM outbox WHERE state = 'pending' AND "
                                    "next_at <= ? LIMIT 1", (self.clock(),)).fetchone() is not None


def open_outbox(sinks: list, state_dir: str | Path | None, metrics=None, on_warning=None):
    """The started outbox in ``state_dir``, or None without sinks."""
    if not sinks:
        return None
    folder = Path(state_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return Outbox(folder / OUTBOX_FILE, sinks, metrics, on_warning=on_warning).start()
    except (OSError, sqlite3.Error) as exc:
        raise OutputError(f"--state {state_dir}: cannot open the alert outbox: {exc}") from None
