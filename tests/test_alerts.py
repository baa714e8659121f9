"""Alerts where on-call looks: closed anomalous sessions from ``watch`` reach a real Alertmanager
(read back through its v2 API) and a signed webhook, through the durable outbox, which also
delivers once an Alertmanager that was down comes up, and never twice."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import CHECKPOINT
from live_helpers import Alertmanager, free_port, heldout_lines

SECRET = "webhook-secret"


class Receiver:
    """A plain HTTP endpoint on 127.0.0.1 that keeps what it is sent (a webhook's other end)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 -- http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def anomalous_slice():
    """Later held-out HDFS blocks: the shipped model flags 8 of their 411 sessions."""
    return heldout_lines(1500, skip=36_052)


def test_watch_sends_each_anomalous_session_to_alertmanager_and_the_webhook(
        tmp_path, anomalous_slice):
    manager = Alertmanager(tmp_path / "am").start()
    receiver = Receiver()
    log = tmp_path / "hdfs.log"
    log.write_text("\n".join(anomalous_slice) + "\n")
    out = tmp_path / "events.jsonl"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tinylogbert.cli.main", "watch", str(log), "--model",
             str(CHECKPOINT), "--from-start", "--no-follow", "--out", str(out),
             "--state", str(tmp_path / "state"), "--alertmanager", manager.url,
             "--post", receiver.url],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "TINYLOGBERT_WEBHOOK_SECRET": SECRET})
        assert proc.returncode == 0, proc.stderr
        events = [json.loads(x) for x in out.read_text().splitlines()]
        anomalous = {e["session_id"]: e for e in events if e["is_anomaly"]}
        assert anomalous, "the slice should hold anomalous sessions"
        alerts = manager.alerts()
    finally:
        manager.stop()
        receiver.close()
    by_session = {a["labels"]["session_id"]: a for a in alerts}
    assert by_session.keys() == anomalous.keys()
    for sid, alert in by_session.items():
        event = anomalous[sid]
        assert alert["labels"]["alertname"] == "TinyLogBERTAnomalousSession"
        assert alert["labels"]["service"] == str(log)
        assert alert["labels"]["grade"] == str(event["grade"])
        assert alert["annotations"]["summary"] == event["top_lines"][0]["message"]
        assert f"session {sid}" in alert["annotations"]["description"]
        assert alert["startsAt"] < alert["endsAt"]
    assert len(receiver.received) == len(anomalous)
    for headers, body in receiver.received:
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["x-tinylogbert-signature"] == f"sha256={digest}"
        payload = json.loads(body)
        assert payload["session_id"] in anomalous and payload["fingerprint"]
        assert headers["x-tinylogbert-delivery"] == f"webhook:{payload['fingerprint']}"


def test_the_outbox_delivers_after_alertmanager_comes_up_and_never_twice(
        tmp_path, anomalous_slice):
    from tinylogbert.live.alert_sinks import AlertmanagerSink
    from tinylogbert.live.metrics import LiveMetrics
    from tinylogbert.live.outbox import Outbox, RetryPolicy
    from tinylogbert.live.session_tracker import SessionTracker
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    tracker = SessionTracker(TinyLogBERTDetector.load(CHECKPOINT, runtime="auto"), idle_timeout=600,
                             source="hdfs")
    events = tracker.feed(anomalous_slice, 1) + tracker.close_all()
    flagged = {e["session_id"] for e in events if e["is_anomaly"]}
    assert flagged
    port = free_port()
    manager = Alertmanager(tmp_path / "am", port)  # not started yet: the sink is down
    metrics = LiveMetrics()
    path = tmp_path / "state" / "outbox.sqlite"
    policy = RetryPolicy(first_delay=0.2, max_delay=0.5)
    outbox = Outbox(path, [AlertmanagerSink(manager.url)], metrics, policy)
    assert outbox.add(events) == len(flagged)
    assert outbox.deliver_due() == 0
    assert outbox.pending() == len(flagged)
    assert metrics.alerts.labels("alertmanager", "retried")._value.get() == 1
    outbox.close(flush_timeout=0)  # the process stops while the sink is down
    try:
        manager.start()
        outbox = Outbox(path, [AlertmanagerSink(manager.url)], metrics, policy).start()
        assert outbox.add(events) == 0  # a restart that replays the same sessions adds nothing
        deadline = time.monotonic() + 30
        while outbox.pending() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert outbox.pending() == 0
        assert outbox.counts() == {"delivered": len(flagged)}
        alerts = manager.alerts()
    finally:
        outbox.close()
        manager.stop()
    assert sorted(a["labels"]["session_id"] for a in alerts) == sorted(flagged)
    assert metrics.alerts.labels("alertmanager", "delivered")._value.get() == len(flagged)


def test_live_ingestion_alerts_reach_alertmanager(tmp_path, anomalous_slice):
    from pathlib import Path

    from fastapi.testclient import TestClient
    from tinylogbert.api.anomaly_routes import create_app
    from tinylogbert.api.ingest_routes import LiveSettings
    from tinylogbert.api.settings import ApiSettings
    from tinylogbert.live.alert_sinks import AlertmanagerSink
    from tinylogbert.live.ingest import IngestConfig

    manager = Alertmanager(tmp_path / "am").start()
    events = tmp_path / "events.jsonl"
    live = LiveSettings(IngestConfig(idle_timeout=600), events_path=events,
                        sinks=(AlertmanagerSink(manager.url),), state_dir=tmp_path / "state")
    try:
        app = create_app(settings=ApiSettings(model_dir=Path(CHECKPOINT)), live=live)
        with TestClient(app) as client:
            r = client.post("/v1/ingest?source=hdfs-prod", content="\n".join(anomalous_slice))
            assert r.status_code == 202
        # shutdown closed every session, wrote its events and flushed the outbox
        flagged = {json.loads(x)["session_id"] for x in events.read_text().splitlines()}
        alerts = manager.alerts()
    finally:
        manager.stop()
    assert flagged and {a["labels"]["session_id"] for a in alerts} == flagged
    assert {a["labels"]["service"] for a in alerts} == {"hdfs-prod"}
