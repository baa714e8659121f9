"""Stack traces live: a trace's lines (Java frames, ``Caused by:``, ``... N more``, a Python
traceback, the exception line next to them) join the sessions of the event line above them, as
``score`` places them, in ``watch`` and in ``serve``'s live ingestion, also when the event and
its trace come in different reads or requests, and over a ``state()`` restart."""
from __future__ import annotations

import json
import random
import time

import pytest
from test_watch import Watch, append


def service_log(json_lines: bool, seed: int = 11, events: int = 160) -> list[str]:
    """A Java order service (trace ids on its event lines) and a Python worker logging into one
    file: error events followed by their stack traces (lines without an id of their own), a few
    events without a trace id (their traces too), an exception line with no frame after it, and
    the file ending on an exception line."""
    rng = random.Random(seed)
    traces = [f"{rng.getrandbits(64):016x}" for _ in range(14)]
    out: list[str] = []
    for i in range(events):
        fields = {"time": f"2024-03-01T12:{i // 60:02d}:{i % 60:02d}.{i % 1000:03d}Z",
                  "level": "info", "service": "orders",
                  "msg": f"order {rng.randrange(40)} step {rng.randrange(6)} done",
                  "trace_id": rng.choice(traces)}
        kind = i % 9
        if i % 29 == 11:
            del fields["trace_id"]  # an event of no trace (a scheduler's), with a trace below
            fields.update(level="error", msg="scheduled sweep failed")
        elif kind in (1, 5):
            fields.update(level="error", msg="order load failed")
        elif kind == 7:
            fields.update(level="error", service="worker", msg="payment job crashed")
        out.append(json.dumps(fields) if json_lines else
                   " ".join(f'{k}="{v}"' if " " in v else f"{k}={v}" for k, v in fields.items()))
        if fields["level"] != "error":
            continue
        if fields["service"] == "worker":
            out += ["Traceback (most recent call last):",
                    '  File "/app/worker/jobs.py", line 88, in run',
                    "    self.charge(order)",
                    f'  File "/app/worker/pay.py", line {rng.randrange(20, 90)}, in charge',
                    '    total = order["amount"] * rate',
                    "KeyError: 'amount'"]
        elif kind == 5 and i % 4 == 1:
            out.append("java.lang.RuntimeException: retry budget spent")  # no frame after it
        else:
            out.append(f"java.lang.IllegalStateException: order {i} has no customer")
            out += [f"\tat com.acme.orders.Repo{k}.load(Repo{k}.java:{k * 7 + 12})"
                    for k in range(rng.randint(1, 7))]
            if rng.random() < 0.6:
                out += ["Caused by: java.sql.SQLTransientConnectionException: pool exhausted",
                        "\tat com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:181)",
                        f"\t... {rng.randint(3, 40)} more"]
    out.append("java.lang.OutOfMemoryError: Java heap space")  # the input ends on it
    return out


def cut_points(lines: list[str]) -> list[int]:
    """Where the batches end: after an exception line whose frames start the next batch, after
    one with no frame after it, inside runs of frames, and after event lines."""
    def exception_then_frame(i: int) -> bool:
        return lines[i - 1].startswith("java.lang.I") and lines[i].startswith("\tat ")
    after_exception = [i for i in range(1, len(lines)) if exception_then_frame(i)][::3]
    lone = [i for i in range(1, len(lines)) if lines[i - 1].startswith("java.lang.R")]
    frames = [i for i in range(2, len(lines)) if lines[i - 1].startswith("\tat ")
              and lines[i].startswith(("\tat ", "Caused", "\t..."))][::5]
    python = [i for i in range(1, len(lines)) if lines[i].startswith("    total")]
    cuts = sorted({*after_exception, *lone, *frames, *python, *range(37, len(lines), 37)})
    assert len(after_exception) >= 5 and lone and python  # every kind of cut is there
    return cuts


def batches(lines: list[str]) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of each batch, cut at ``cut_points``."""
    bounds = [0, *cut_points(lines), len(lines)]
    return [(a + 1, lines[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a]


def score_sessions(detector, lines: list[str], fmt: str,
                   sessions=None) -> dict[str, tuple[float, int, int]]:
    from tinylogbert import pipeline

    result = pipeline.run(detector, "\n".join(lines) + "\n", pipeline.ScoreOptions(
        log_format=fmt, sessions=sessions, embeddings=False)).result
    return {str(r.session_id): (float(r.score), int(r.n_lines), int(r.first_line_no))
            for r in result.session_table.to_pandas().itertuples()}


def live_sessions(events: list[dict], source: str | None = None) -> dict[str, tuple]:
    got = [e for e in events if e["event"] == "session" and source in (None, e["source"])]
    out = {e["session_id"]: (float(e["score"]), int(e["n_lines"]), int(e["first_line_no"]))
           for e in got}
    assert len(out) == len(got), "a session was emitted twice"
    return out


def assert_same(live: dict, batch: dict) -> None:
    assert live.keys() == batch.keys()
    for sid, (score, n, first) in batch.items():
        assert live[sid][1:] == (n, first), sid
        assert live[sid][0] == pytest.approx(score, abs=1e-5), sid


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint):
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    return TinyLogBERTDetector.load(tiny_checkpoint, runtime="auto")


@pytest.fixture(scope="module", params=["logfmt", "jsonl"])
def case(request, loaded):
    lines = service_log(request.param == "jsonl")
    batch = score_sessions(loaded, lines, request.param)
    traced = [k for k, v in batch.items() if not k.startswith("no-id:")]
    # the traces' lines (no id of their own) are in their events' sessions
    assert len(traced) == 14 and sum(batch[k][1] for k in traced) > 0.6 * len(lines)
    assert any(k.startswith("no-id:") for k in batch)
    return request.param, lines, batch


def test_tracker_places_trace_lines_as_score_does_across_feeds_and_a_restart(loaded, case):
    from tinylogbert.live.session_tracker import SessionTracker

    fmt, lines, batch = case
    parts = batches(lines)
    tracker = SessionTracker(loaded, fmt, emit_all=True, idle_timeout=1e9, keep_text=True)
    events: list[dict] = []
    for k, (first, part) in enumerate(parts):
        events += tracker.feed(part, first)
        if k in (len(parts) // 3, len(parts) // 2):  # a restart: the state, a fresh tracker
            data = json.loads(json.dumps(tracker.state()))
            if k == len(parts) // 2:
                assert data["trace"]["deferred"] is not None  # mid-wait, after an exception line
            tracker = SessionTracker(loaded, fmt, emit_all=True, idle_timeout=1e9,
                                     keep_text=True)
            tracker.load_state(data)
    events += tracker.close_all()
    assert tracker.strategy == "id field <trace_id>"
    assert_same(live_sessions(events), batch)


@pytest.mark.parametrize("size, step", [(5, 2), (20, 0), (3, 3)])
def test_windows_keep_a_trace_cut_by_their_end_with_its_event(loaded, case, size, step):
    """In windows, a trace that a window's end cuts stays in its event's window(s) (the window
    closes at the next event line), and a window holding only trace lines is no session, as
    in ``score``; the windows are named by their stretch of lines, across feeds and a restart."""
    from tinylogbert.live.session_tracker import SessionTracker
    from tinylogbert.sessions.grouping import SessionConfig, window_starts

    fmt, lines, _ = case
    windows = SessionConfig(by="window", window_size=size, window_step=step)
    batch = score_sessions(loaded, lines, fmt, windows)
    if size < 10:  # some windows hold only trace lines of an event before them: none
        assert len(batch) < len(window_starts(len(lines), size, step or size))
    parts = batches(lines)

    def fresh():
        return SessionTracker(loaded, fmt, windows, emit_all=True, idle_timeout=1e9,
                              keep_text=True)
    tracker, events = fresh(), []
    for k, (first, part) in enumerate(parts):
        events += tracker.feed(part, first)
        if k == len(parts) // 2:
            data = json.loads(json.dumps(tracker.state()))
            tracker = fresh()
            tracker.load_state(data)
    events += tracker.close_all()
    assert_same(live_sessions(events), batch)
    assert "full" in {e["closed"] for e in events} <= {"full", "end"}


def test_a_wait_for_the_next_line_ends_with_the_idle_timeout(loaded, case):
    """An exception line at the end of what came waits for the next line; none comes: it is
    its own event once the idle timeout passes (as at the input's end), not held forever."""
    from tinylogbert.live.session_tracker import SessionTracker

    fmt, lines, _ = case
    end = next(i for i in range(200, len(lines)) if lines[i - 1].startswith("java.lang.I")
               and lines[i].startswith("\tat "))
    clock = [0.0]
    tracker = SessionTracker(loaded, fmt, emit_all=True, idle_timeout=5, clock=lambda: clock[0])
    tracker.feed(lines[:end], 1)
    assert tracker._deferred is not None
    clock[0] = 10.0
    events = tracker.close_idle()
    assert tracker._deferred is None and tracker.open_sessions == 0 and tracker.last_idle
    assert sum(e["n_lines"] for e in events) == end
    assert_same(live_sessions(events), score_sessions(loaded, lines[:end], fmt))


def test_watch_follows_traces_across_reads(tmp_path, tiny_checkpoint, case):
    """The file grows in bursts that cut traces (the watch reads each burst alone); SIGTERM
    closes every session: the sessions and scores of ``score`` on the whole file."""
    fmt, lines, batch = case
    log = tmp_path / f"service-{fmt}.log"
    log.write_text("")
    watch = Watch(tmp_path, tiny_checkpoint, str(log), "--format", fmt, "--all",
                  "--idle-timeout", "3600")
    watch.wait_ready()
    for _, part in batches(lines):
        append(log, part)
        time.sleep(0.12)  # (the watch polls every 0.05 s: each burst is its own read)
    assert watch.stop() == 0, watch.stderr()  # (what was written still counts)
    assert f"{len(lines):,} lines" in watch.stderr()
    events = watch.events()
    assert {e["closed"] for e in events} == {"signal", "full"}  # (full: 20 lines without an id)
    assert_same(live_sessions(events), batch)


def test_serve_ingest_and_otlp_follow_traces_across_requests(tmp_path, tiny_checkpoint, case):
    """The same lines pushed to ``/v1/ingest`` (plain text) and ``/v1/logs`` (OTLP JSON, one
    record per line), one request per batch, the batches cutting traces: each stream's sessions
    and scores are ``score``'s."""
    from fastapi.testclient import TestClient
    from tinylogbert.api.anomaly_routes import create_app
    from tinylogbert.api.ingest_routes import LiveSettings
    from tinylogbert.api.settings import ApiSettings
    from tinylogbert.live.ingest import IngestConfig

    fmt, lines, batch = case
    events = tmp_path / "events.jsonl"
    app = create_app(settings=ApiSettings(model_dir=tiny_checkpoint), live=LiveSettings(
        IngestConfig(log_format=fmt, emit_all=True, idle_timeout=3600), events_path=events))
    with TestClient(app) as client:
        for _, part in batches(lines):
            r = client.post("/v1/ingest?source=plain", content="\n".join(part) + "\n",
                            headers={"content-type": "text/plain"})
            assert r.status_code == 202 and r.json()["accepted"] == len(part), r.text
            otlp = {"resourceLogs": [{"resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "orders"}}]},
                "scopeLogs": [{"logRecords": [{"body": {"stringValue": x}} for x in part]}]}]}
            r = client.post("/v1/logs", json=otlp)
            assert r.status_code == 200, r.text
        assert app.state.live_ingest.drain(60)
    written = [json.loads(x) for x in events.read_text().splitlines()]
    for source in ("plain", "orders"):
        assert_same(live_sessions(written, source), batch)


def test_watch_state_keeps_the_event_a_trace_continues_over_a_restart(tmp_path, tiny_checkpoint,
                                                                      case):
    """The watch is stopped (SIGTERM, ``--state``: its sessions are saved open) right after an
    exception line whose frames are not written yet; the restarted watch reads them: they
    join that event's session, as in ``score``."""
    import subprocess
    import sys

    from test_watch import ENV

    fmt, lines, batch = case
    cut = next(i for i in range(len(lines) // 2, len(lines))
               if lines[i - 1].startswith("java.lang.I") and lines[i].startswith("\tat "))
    log, out, state = tmp_path / "service.log", tmp_path / "events.jsonl", tmp_path / "state"
    log.write_text("\n".join(lines[:cut]) + "\n")
    command = [sys.executable, "-m", "tinylogbert.cli.main", "watch", str(log), "--model",
               str(tiny_checkpoint), "--format", fmt, "--from-start", "--all", "--idle-timeout",
               "3600", "--poll", "0.05", "--out", str(out), "--state", str(state)]
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    saved = state / "watch-state.json"
    deadline = time.monotonic() + 120
    while not (saved.exists() and json.loads(saved.read_text())["next_line_no"] == cut + 1):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(15)
    assert proc.wait(timeout=60) == 0
    assert json.loads(saved.read_text())["tracker"]["trace"]["deferred"] is not None
    append(log, lines[cut:])
    again = subprocess.run([*command, "--no-follow"], env=ENV, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0 and "resuming" in again.stderr, again.stderr
    assert_same(live_sessions([json.loads(x) for x in out.read_text().splitlines()]), batch)
