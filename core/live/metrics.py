"""Prometheus metrics of live scoring (``watch --metrics-port``, ``serve``'s ``/metrics``).

Why a registry of its own: two apps or watches in one process (tests, a notebook) must not share
counters, and the default registry's process metrics are not ours to redefine.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Scoring one step's closed sessions: milliseconds for a few sessions, seconds for a burst.
SCORING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass
class StepCounts:
    """What one tracker step did, from its stats before and after."""

    lines: int
    sessions: int
    forced: int = 0


class LiveMetrics:
    """The counters, gauges and the latency histogram; ``observe`` is called after each step."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.lines = Counter("tinylogbert_lines", "log lines taken in", ["source"], registry=r)
        self.sessions = Counter("tinylogbert_sessions_closed", "sessions closed and scored",
                                ["source"], registry=r)
        self.anomalies = Counter("tinylogbert_anomalous_sessions",
                                 "closed sessions over the threshold, by grade",
                                 ["source", "grade"], registry=r)
        self.forced = Counter("tinylogbert_sessions_forced_closed",
                              "sessions closed before their end by --max-open-sessions (the "
                              "least recently active first) or --max-session-lines, and scored "
                              "as they stood", ["source"], registry=r)
        self.open_sessions = Gauge("tinylogbert_open_sessions", "sessions still open",
                                   ["source"], registry=r)
        self.scoring = Histogram("tinylogbert_scoring_seconds",
                                 "time to group and score one step of closed sessions",
                                 buckets=SCORING_BUCKETS, registry=r)
        self.queue_depth = Gauge("tinylogbert_ingest_queue_lines",
                                 "lines received and waiting to be scored", registry=r)
        self.rejected = Counter("tinylogbert_ingest_rejected",
                                "requests refused because the queue was full (429/503)",
                                ["endpoint"], registry=r)
        self.alerts = Counter("tinylogbert_alerts",
                              "alert deliveries by sink and outcome (delivered, retried, failed)",
                              ["sink", "outcome"], registry=r)
        self.outbox_pending = Gauge("tinylogbert_alert_outbox_pending",
                                    "alerts in the outbox not yet delivered", registry=r)
        self.drift = Gauge("tinylogbert_drift_warning",
                           "1 once the live lines drifted from the training log (see the "
                           "warning in the log), else 0", ["source"], registry=r)
        self.fit = Gauge("tinylogbert_fit_warning",
                         "1 once the model was found not to fit the live lines, else 0",
                         ["source"], registry=r)

    def watch_source(self, source: str) -> None:
        """Make a source's series exist at 0 from the start (a scrape sees them before any line)."""
        self.lines.labels(source)
        self.sessions.labels(source)
        self.forced.labels(source)
        self.drift.labels(source).set(0)
        self.fit.labels(source).set(0)
        self.open_sessions.labels(source).set(0)

    def observe(self, source: str, before: StepCounts, tracker, events: list[dict],
                seconds: float) -> None:
        stats = tracker.stats
        if stats.lines > before.lines:
            self.lines.labels(source).inc(stats.lines - before.lines)
        if stats.sessions_closed > before.sessions:
            self.sessions.labels(source).inc(stats.sessions_closed - before.sessions)
            self.scoring.observe(seconds)
        if stats.forced_closed > before.forced:
            self.forced.labels(source).inc(stats.forced_closed - before.forced)
        for event in events:
            if event.get("event") == "session" and event.get("is_anomaly"):
                self.anomalies.labels(source, str(event.get("grade") or "none")).inc()
        self.open_sessions.labels(source).set(tracker.open_sessions)

    def warning_hook(self, source: str, then: Callable[[str], None] | None
                     ) -> Callable[[str], None]:
        """A tracker's ``on_warning`` that also raises the drift / fit gauges."""
        def on_warning(message: str) -> None:
            if message.startswith("drift in "):
                self.drift.labels(source).set(1)
            elif message.startswith("the model does not fit "):
                self.fit.labels(source).set(1)
            if then:
                then(message)
        return on_warning

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def step(tracker, metrics: LiveMetrics | None, source: str, call: Callable[..., list[dict]],
         *args) -> list[dict]:
    """Run one tracker call (``feed``, ``close_idle``...) and record what it did."""
    if metrics is None:
        return call(*args)
    before = StepCounts(tracker.stats.lines, tracker.stats.sessions_closed,
                        tracker.stats.forced_closed)
    started = time.perf_counter()
    events = call(*args)
    metrics.observe(source, before, tracker, events, time.perf_counter() - started)
    return events


def serve_metrics(metrics: LiveMetrics, port: int, host: str = "127.0.0.1"):
    """``/metrics`` on its own port (``watch --metrics-port``), in a daemon thread."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server
