"""``serve --state DIR``: live ingestion restarts without loss. Accepted batches go to a
write-ahead log (fsynced before the answer), the open sessions are snapshotted, and a restart
replays what the snapshot does not cover: the events equal an uninterrupted run's, with no line
scored twice, no session lost or split, no alert repeated.

In-process here (a real detector, real trackers, real files); ``serve`` killed with SIGKILL in
a subprocess below, with a webhook receiver on 127.0.0.1."""
from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from conftest import SMALL_LOG
from live_helpers import free_port, metric_value, wait_http


def small_lines() -> list[str]:
    with gzip.open(SMALL_LOG, "rt", encoding="utf-8") as handle:
        return handle.read().splitlines()


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint):
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    return TinyLogBERTDetector.load(tiny_checkpoint, runtime="auto")


def config(**kw):
    from tinylogbert.live.ingest import IngestConfig

    # Sessions close only when forced (least recently active first, at 40 open) or flushed:
    # that depends on the lines alone, so two runs can be compared event for event.
    return IngestConfig(**{"idle_timeout": 3600, "max_open_sessions": 40, "emit_all": True,
                           **kw})


def batches(lines: list[str], size: int) -> list[list[tuple[str, list[str], None]]]:
    return [[("hdfs", lines[i:i + size], None)] for i in range(0, len(lines), size)]


def reference_events(detector, lines: list[str], size: int) -> list[dict]:
    from tinylogbert.live.ingest import LiveIngest

    out: list[dict] = []
    ingest = LiveIngest(detector, config(), out.extend)
    for b in batches(lines, size):
        ingest.offer(b)
    ingest.flush()
    ingest.close()
    return [json.loads(json.dumps(e, default=str)) for e in out]


class EventFile:
    """``serve --events``'s file (the route module's own writer)."""

    def __init__(self, path: Path) -> None:
        from tinylogbert.api.ingest_routes import _EventLog

        self.path = path
        self.log = _EventLog(path)

    def read(self) -> list[dict]:
        return [json.loads(x) for x in self.path.read_text().splitlines()]


def test_snapshot_and_log_tail_restore_the_open_sessions_exactly(loaded, tmp_path):
    from tinylogbert.live.ingest import LiveIngest
    from tinylogbert.live.state import IngestState

    lines = small_lines()[:3000]
    parts = batches(lines, 200)  # 15 batches
    want = reference_events(loaded, lines, 200)
    assert len(want) > 40 and any(e["closed"] == "forced" for e in want)

    state_dir = tmp_path / "state"
    events = EventFile(tmp_path / "events.jsonl")
    first = LiveIngest(loaded, config(snapshot_seconds=0.0), events.log.write,
                       state=IngestState(state_dir), events_log=events.log)
    assert first.recover() == (0, 0)
    for b in parts[:4]:  # snapshotted after each step
        first.offer(b)
    assert first.drain(60)
    snapshot = json.loads((state_dir / "ingest-state.json").read_text())
    assert snapshot["fed"] == 4 and snapshot["streams"]["hdfs"]["tracker"]["open"]
    first.config = replace(first.config, snapshot_seconds=3600.0)  # no snapshot from here on
    for b in parts[4:8]:  # scored and written, only in the log
        first.offer(b)
    assert first.drain(60)
    gate = threading.Event()
    first.prepare = gate.wait  # the worker stops before its next step
    for b in parts[8:10]:  # acknowledged, never scored
        first.offer(b)
    written_before = events.read()
    saved_size = json.loads((state_dir / "ingest-state.json").read_text())["events_size"]
    assert 0 < saved_size < events.path.stat().st_size  # events written after the snapshot
    # the process dies here: no close; a record cut short by the crash ends the log
    with open(state_dir / "ingest-wal.log", "ab") as wal:
        wal.write(b'b 10 1 [["hdfs",["081109 2')
    events.log.handle.close()
    with pytest.raises(OSError, match="another process"):  # the folder is this process's
        IngestState(state_dir)
    first.state.close()  # (what the process's death does: its files closed, its lock gone)

    events = EventFile(tmp_path / "events.jsonl")
    second = LiveIngest(loaded, config(), events.log.write, state=IngestState(state_dir),
                        events_log=events.log)
    assert second.recover() == (1, 6)  # batches 4-9 replayed on the snapshot after batch 3
    replayed = events.read()  # cut back to the snapshot, then the replay's events again
    assert replayed[:len(written_before)] == written_before == want[:len(written_before)]
    assert len(replayed) > len(written_before) and replayed == want[:len(replayed)]
    print(sum(e["is_anomaly"] for e in want), "anomalous of", len(want))
    for b in parts[10:12]:
        second.offer(b)
    second.close()  # a clean stop (SIGTERM): the open sessions are saved, not closed
    events.log.close()
    assert (state_dir / "ingest-wal.log").read_text() == ""  # all in the snapshot
    saved = json.loads((state_dir / "ingest-state.json").read_text())
    assert saved["fed"] == 12 and saved["streams"]["hdfs"]["tracker"]["open"]

    events = EventFile(tmp_path / "events.jsonl")
    third = LiveIngest(loaded, config(), events.log.write, state=IngestState(state_dir),
                       events_log=events.log)
    assert third.recover() == (1, 0)
    for b in parts[12:]:
        third.offer(b)
    third.flush()
    third.close()
    events.log.close()
    got = events.read()
    assert got == want  # the same events, in the same order: none lost, split or repeated
    saved = json.loads((state_dir / "ingest-state.json").read_text())
    assert saved["fed"] == len(parts) + 1 and not saved["streams"]["hdfs"]["tracker"]["open"]


def test_idle_closes_of_the_killed_run_are_replayed_from_the_log(loaded, tmp_path):
    """Sessions the first run closed for idleness (a matter of the clock) close at the same
    place in the replay: the events after the restart are the killed run's, exactly."""
    from tinylogbert.live.ingest import LiveIngest
    from tinylogbert.live.state import IngestState

    lines = small_lines()[:1600]
    parts = batches(lines, 400)
    state_dir, path = tmp_path / "state", tmp_path / "events.jsonl"
    options = config(idle_timeout=0.3, snapshot_seconds=3600.0)
    events = EventFile(path)
    first = LiveIngest(loaded, options, events.log.write, state=IngestState(state_dir),
                       events_log=events.log)
    first.recover()
    wal = state_dir / "ingest-wal.log"
    for b in parts:
        first.offer(b)
        time.sleep(0.7)  # an idle check (every 0.5 s) between batches: closes between them
    deadline = time.monotonic() + 30
    while wal.read_text().count("\ni ") + wal.read_text().startswith("i ") < 2:
        assert time.monotonic() < deadline, "no idle close logged"
        time.sleep(0.05)
    assert first.drain(30)
    gate = threading.Event()
    first.prepare = gate.wait
    time.sleep(0.6)  # (the worker is held at its next idle check)
    first.state.close()  # killed
    events.log.handle.close()
    killed = events.read()
    assert any(e["closed"] == "idle" for e in killed)

    events = EventFile(path)
    second = LiveIngest(loaded, options, events.log.write, state=IngestState(state_dir),
                        events_log=events.log)
    second.recover()
    assert events.read() == killed  # cut to the (empty) snapshot, then replayed identically
    second.close()
    events.log.close()


def test_idle_closes_are_replayed_as_they_happened(loaded):
    """An idle close depends on the clock, not on the lines: the log records which sessions it
    closed, and ``apply_idle`` on the restored sessions closes exactly those."""
    from tinylogbert.live.session_tracker import SessionTracker

    now = [0.0]
    lines = small_lines()[:1200]

    def tracker():
        return SessionTracker(loaded, idle_timeout=10, emit_all=True, source="s",
                              clock=lambda: now[0], keep_text=True)

    live = tracker()
    live.feed(lines[:600], 1)
    now[0] = 8.0
    live.feed(lines[600:1000], 601)  # the blocks of these lines stay active
    saved = json.loads(json.dumps(live.state()))
    now[0] = 12.0
    closed = live.close_idle()
    done = live.last_idle
    assert closed and done["sids"] and live.open_sessions  # some closed, some still open

    restored = tracker()
    restored.load_state(saved)
    now[0] = 1000.0  # whatever the clock says: the same sessions close
    again = restored.apply_idle(json.loads(json.dumps(done)))
    strip = lambda events: [json.dumps(e, default=str) for e in events]  # noqa: E731
    assert strip(again) == strip(closed)
    assert strip(restored.feed(lines[1000:], 1001)) == strip(live.feed(lines[1000:], 1001))
    assert strip(restored.close_all()) == strip(live.close_all())


def test_the_caps_close_the_oldest_session_and_say_so(tiny_checkpoint, tmp_path):
    """--max-open-sessions / --max-session-lines: the oldest open session is closed and scored
    as it stands, marked in its event and counted in /metrics."""
    from fastapi.testclient import TestClient
    from tinylogbert.api.anomaly_routes import create_app
    from tinylogbert.api.ingest_routes import LiveSettings
    from tinylogbert.api.settings import ApiSettings
    from tinylogbert.live.ingest import IngestConfig

    events = tmp_path / "events.jsonl"
    lines = small_lines()[:1500]
    live = LiveSettings(IngestConfig(idle_timeout=3600, max_open_sessions=25,
                                     max_session_lines=6, emit_all=True), events_path=events)
    app = create_app(settings=ApiSettings(model_dir=Path(tiny_checkpoint)), live=live)
    with TestClient(app) as client:
        assert client.post("/v1/ingest?source=capped", content="\n".join(lines)
                           ).status_code == 202
        assert app.state.live_ingest.drain(60)
        text = client.get("/metrics").text
        forced = metric_value(text, "tinylogbert_sessions_forced_closed_total", source="capped")
        r = client.post("/v1/ingest/flush")
        assert r.status_code == 200 and r.json()["open_sessions"] == 0
    written = [json.loads(x) for x in events.read_text().splitlines()]
    reasons = [e["closed"] for e in written]
    assert {"forced", "max-lines", "flush"} <= set(reasons)
    assert forced == reasons.count("forced") + reasons.count("max-lines")
    assert max(e["n_lines"] for e in written) <= 6
    assert sum(e["n_lines"] for e in written) >= len(lines)  # every line in a session



def serve_command(model, port: int, state: Path, events: Path, hook: str) -> list[str]:
    return [sys.executable, "-m", "tinylogbert.cli.main", "serve", "--model", str(model),
            "--port", str(port), "--state", str(state), "--events", str(events), "--all",
            "--idle-timeout", "3600", "--max-open-sessions", "40", "--snapshot-interval", "2",
            "--post", hook]


def post_batches(port: int, parts: list[list[str]]) -> None:
    for part in parts:  # NDJSON, as Fluent Bit's json_lines output sends it
        body = "".join(json.dumps({"log": x, "host": "dn-1"}) + "\n" for x in part)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/ingest?source=hdfs", content=body,
                       headers={"content-type": "application/x-ndjson"}, timeout=60)
        assert r.status_code == 202 and r.json()["accepted"] == len(part), r.text


def finish(proc: subprocess.Popen, port: int, receiver, events: Path) -> None:
    """Close the sessions still open (POST /v1/ingest/flush), wait for their alerts, stop."""
    r = httpx.post(f"http://127.0.0.1:{port}/v1/ingest/flush", timeout=120)
    assert r.status_code == 200 and r.json()["open_sessions"] == 0, r.text
    flagged = sum(json.loads(x)["is_anomaly"] for x in events.read_text().splitlines())
    deadline = time.monotonic() + 30
    while len({h["x-tinylogbert-delivery"] for h, _ in receiver.received}) < flagged:
        assert time.monotonic() < deadline, "the alerts did not all arrive"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) in (0, -signal.SIGTERM)


def alerts(receiver) -> dict[str, str]:
    """delivery key -> session id; a key sent twice (at-least-once: a kill between the send and
    its record) is one alert, which the receiver de-duplicates by that header."""
    return {h["x-tinylogbert-delivery"]: json.loads(body)["session_id"]
            for h, body in receiver.received}


def test_serve_killed_with_sigkill_and_restarted_loses_and_repeats_nothing(tiny_checkpoint,
                                                                           tmp_path):
    from test_alerts import Receiver

    lines = small_lines()  # 7,481 real HDFS lines
    parts = [lines[i:i + 400] for i in range(0, len(lines), 400)]
    runs = {}
    for run in ("reference", "killed"):
        receiver, port = Receiver(), free_port()
        state, events = tmp_path / run / "state", tmp_path / run / "events.jsonl"
        events.parent.mkdir()
        command = serve_command(tiny_checkpoint, port, state, events, receiver.url)
        err = open(tmp_path / f"{run}.err", "w")  # noqa: SIM115
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_http(f"http://127.0.0.1:{port}/v1/health", proc=proc)
            if run == "killed":
                post_batches(port, parts[:6])
                snapshot = state / "ingest-state.json"
                deadline = time.monotonic() + 60
                while json.loads(snapshot.read_text())["fed"] < 3:  # some batches covered
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
                post_batches(port, parts[6:9])  # well within the 2 s to the next snapshot
                proc.send_signal(signal.SIGKILL)  # right after three acknowledged batches
                assert proc.wait(timeout=30) == -signal.SIGKILL
                fed = json.loads(snapshot.read_text())["fed"]
                assert 3 <= fed < 9, "the kill should land before the snapshot covers it all"
                before = events.read_text().splitlines()
                assert before, "sessions were closed and written before the kill"
                proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
                wait_http(f"http://127.0.0.1:{port}/v1/health", proc=proc)
                post_batches(port, parts[9:])
            else:
                post_batches(port, parts)
            finish(proc, port, receiver, events)
        finally:
            if proc.poll() is None:
                proc.kill()
            receiver.close()
            err.close()
        runs[run] = ([json.loads(x) for x in events.read_text().splitlines()], alerts(receiver))
    stderr = (tmp_path / "killed.err").read_text()
    assert "live ingestion resumed" in stderr and "1 stream(s) restored" in stderr, stderr
    (got, got_alerts), (want, want_alerts) = runs["killed"], runs["reference"]
    key = lambda e: (e["session_id"], e["first_line_no"])  # noqa: E731
    assert len({key(e) for e in got}) == len(got), "an event repeated"
    assert got == want  # same sessions, same scores, same order: nothing lost, split, repeated
    assert want_alerts and got_alerts == want_alerts  # the same alerts, none for a split session
    assert sorted(got_alerts.values()) == sorted(e["session_id"] for e in want
                                                 if e["is_anomaly"])


def test_a_request_that_cannot_be_logged_is_refused_not_acknowledged(tiny_checkpoint,
                                                                      tmp_path):
    from fastapi.testclient import TestClient
    from tinylogbert.api.anomaly_routes import create_app
    from tinylogbert.api.ingest_routes import LiveSettings
    from tinylogbert.api.settings import ApiSettings

    state = tmp_path / "state"
    live = LiveSettings(config(), state_dir=state, durable=True)
    lines = small_lines()[:50]
    app = create_app(settings=ApiSettings(model_dir=Path(tiny_checkpoint)), live=live)
    with TestClient(app) as client:
        wal = state / "ingest-wal.log"
        wal.unlink()
        wal.mkdir()  # the log cannot be written (as on a full or read-only disk)
        r = client.post("/v1/ingest", content="\n".join(lines))
        assert r.status_code == 503 and "cannot write the ingest log" in r.json()["message"]
        assert r.headers["retry-after"] and app.state.live_ingest.stats.accepted_lines == 0
        wal.rmdir()
        assert client.post("/v1/ingest", content="\n".join(lines)).status_code == 202
        assert client.post("/v1/ingest/flush").json()["closed_sessions"] > 0
    assert json.loads((state / "ingest-state.json").read_text())["fed"] == 2
