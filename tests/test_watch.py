"""``tinylogbert watch``: live scoring equals batch scoring; tail -F semantics; signals; bounds."""
from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SMALL_LOG

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
with gzip.open(SMALL_LOG, "rt", encoding="utf-8") as _log:
    LINES = _log.read().splitlines()


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint):
    """The tiny checkpoint loaded as the CLI loads it (runtime='auto'), for batch scores."""
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    return TinyLogBERTDetector.load(tiny_checkpoint, runtime="auto")


def batch_sessions(detector, lines: list[str], sessions=None):
    from tinylogbert import pipeline

    text = "\n".join(lines) + "\n"
    result = pipeline.run(detector, text, pipeline.ScoreOptions(sessions=sessions)).result
    return result.session_table.to_pandas()


class Watch:
    """``tinylogbert watch`` in a subprocess, its events in a file, its stderr in another."""

    def __init__(self, tmp: Path, checkpoint: Path, *args: str, stdin=None) -> None:
        self.events_path = tmp / f"events-{time.monotonic_ns()}.jsonl"
        self.err_path = self.events_path.with_suffix(".err")
        self.err = open(self.err_path, "w")  # noqa: SIM115 -- closed by stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tinylogbert.cli.main", "watch", *args, "--model", str(checkpoint),
             "--out", str(self.events_path), "--poll", "0.05"],
            env=ENV, stdin=stdin, stdout=subprocess.DEVNULL, stderr=self.err,
        )

    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait_ready(self, timeout: float = 60) -> None:
        self._wait(lambda: "watching" in self.stderr(), timeout, "the watch to start")

    def events(self) -> list[dict]:
        if not self.events_path.exists():
            return []
        text = self.events_path.read_text()
        return [json.loads(line) for line in text.splitlines()[: text.count("\n")]]

    def wait_events(self, n: int, timeout: float = 60) -> list[dict]:
        self._wait(lambda: len(self.events()) >= n, timeout, f"{n} events")
        return self.events()

    def _wait(self, done, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if self.proc.poll() is not None and not done():
                raise AssertionError(f"watch exited ({self.proc.returncode}): {self.stderr()}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"timed out waiting for {what}: {self.stderr()}")
            time.sleep(0.05)

    def wait_exit(self, timeout: float = 60) -> int:
        """The return code once the watch ends by itself (end of input)."""
        self._wait(lambda: self.proc.poll() is not None, timeout, "the end of input")
        return self.stop()

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.err.close()


def append(path: Path, lines: list[str]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))


def assert_same_as_batch(events: list[dict], batch, exact: bool = True) -> None:
    live = {e["session_id"]: e for e in events}
    assert len(live) == len(events), "a session was emitted twice"
    flagged_live = {k for k, e in live.items() if e["is_anomaly"]}
    flagged_batch = set(batch.session_id[batch.is_anomaly])
    assert flagged_live == flagged_batch
    assert set(live) == set(batch.session_id)
    scores = dict(zip(batch.session_id, batch.score))
    assert max(abs(e["score"] - scores[k]) for k, e in live.items()) <= 1e-5
    by_id = batch.set_index("session_id")
    for k, e in live.items():
        assert e["n_lines"] == by_id.loc[k, "n_lines"]
        assert e["first_line_no"] == by_id.loc[k, "first_line_no"]
        assert e["grade"] == by_id.loc[k, "grade"] and e["severity"] == by_id.loc[k, "severity"]
        assert e["p_high"] == pytest.approx(by_id.loc[k, "p_high"], abs=1e-5)
        assert e["top_lines"][0]["line_no"] == by_id.loc[k, "top_line_no"]


# ---- (1) ten bursts appended while watch runs == score on the whole file ------------------------
def test_ten_bursts_match_batch_score(tmp_path, tiny_checkpoint, loaded):
    log = tmp_path / "live.log"
    log.write_text("")
    watch = Watch(tmp_path, tiny_checkpoint, str(log), "--all", "--idle-timeout", "2")
    watch.wait_ready()
    for burst in np.array_split(np.arange(len(LINES)), 10):
        append(log, [LINES[i] for i in burst])
        time.sleep(0.05)
    batch = batch_sessions(loaded, LINES)
    events = watch.wait_events(len(batch))  # closed by the idle timeout, the watch still running
    assert watch.proc.poll() is None
    assert {e["closed"] for e in events} == {"idle"}
    assert watch.stop() == 0
    assert_same_as_batch(watch.events(), batch)
    e = events[0]
    assert {"session_id", "score", "is_anomaly", "severity", "grade", "p_normal", "p_critical",
            "first_line_no", "last_line_no", "first_time", "last_time", "top_lines"} <= set(e)
    assert "stopped (SIGTERM)" in watch.stderr() and "7,481 lines" in watch.stderr()


@pytest.mark.parametrize("start", [["--from-start"], []])
def test_anomalous_only_by_default_and_no_follow_equals_batch(tmp_path, tiny_checkpoint, loaded,
                                                             start):
    """--no-follow reads the file from line 1 with or without --from-start (from its end it
    would read nothing)."""
    log = tmp_path / "done.log"
    append(log, LINES)
    watch = Watch(tmp_path, tiny_checkpoint, str(log), *start, "--no-follow")
    assert watch.wait_exit() == 0
    assert "from its first line, to its end" in watch.stderr()
    assert f"{len(LINES):,} lines" in watch.stderr()
    batch = batch_sessions(loaded, LINES)
    events = watch.events()
    assert events and all(e["is_anomaly"] for e in events)
    assert {e["session_id"] for e in events} == set(batch.session_id[batch.is_anomaly])
    assert {e["closed"] for e in events} <= {"end", "signal"}


def test_lines_adds_an_event_per_line_over_the_line_threshold(tmp_path, tiny_checkpoint, loaded):
    log = tmp_path / "done.log"
    append(log, LINES)
    watch = Watch(tmp_path, tiny_checkpoint, str(log), "--from-start", "--no-follow", "--lines")
    assert watch.wait_exit() == 0
    events = watch.events()
    text = "\n".join(LINES) + "\n"
    from tinylogbert import pipeline

    result = pipeline.run(loaded, text, pipeline.ScoreOptions()).result
    table = result.line_table.to_pandas()
    over = table[table.score > result.line_threshold]
    line_events = [e for e in events if e["event"] == "line"]
    assert {e["event"] for e in events} == {"session", "line"}
    assert sorted(e["first_line_no"] for e in line_events) == sorted(over.line_no)
    assert all(e["score"] > e["threshold"] == result.line_threshold for e in line_events)
    # Same shape as a session event: the keys a reader relies on are there.
    session = next(e for e in events if e["event"] == "session")
    common = {"event", "session_id", "score", "is_anomaly", "threshold", "n_lines",
              "first_line_no", "last_line_no", "first_time", "last_time", "closed",
              "top_line_no", "source"}
    assert common <= set(session) and common <= set(line_events[0])


# ---- (2) rotation and truncation -----------------------------------------------------------------
def test_rotation_and_truncation_are_followed(tmp_path, tiny_checkpoint):
    log = tmp_path / "app.log"
    log.write_text("")
    watch = Watch(tmp_path, tiny_checkpoint, str(log), "--all", "--sessions", "window",
                  "--window", "10", "--idle-timeout", "60")
    watch.wait_ready()
    append(log, LINES[:25])
    first = watch.wait_events(2)
    assert [e["session_id"] for e in first] == ["L1-10", "L11-20"]
    os.rename(log, tmp_path / "app.log.1")  # rotated: the new file starts at line 1
    append(log, LINES[100:115])
    events = watch.wait_events(4)
    assert events[2]["session_id"] == "L21-25" and events[2]["closed"] == "rotated"
    # the new file's line numbers start at 1 again: its ids say which file of the run they are in
    assert events[3]["session_id"] == "file2:L1-10" and events[3]["closed"] == "full"
    assert events[3]["top_lines"][0]["message"] in {m.split(": ", 1)[1] for m in LINES[100:110]}
    log.write_text("".join(line + "\n" for line in LINES[200:205]))  # truncated in place
    events = watch.wait_events(5)
    assert events[4]["session_id"] == "file2:L11-15" and events[4]["closed"] == "truncated"
    assert watch.stop() == 0
    last = watch.events()[5]
    assert (last["session_id"], last["closed"], last["n_lines"]) == ("file3:L1-5", "signal", 5)
    ids = [e["session_id"] for e in watch.events()]
    assert len(set(ids)) == len(ids), ids  # unique within the run
    names = set(watch.events()[0]["components"])  # as SESSIONS.csv and README name them
    assert names and names <= {"z_rarity", "z_context", "z_top"}, names
    assert "rotated" in watch.stderr() and "truncated" in watch.stderr()


def test_follow_keeps_partial_lines_until_their_newline(tmp_path):
    from tinylogbert.live.follow import follow

    log = tmp_path / "p.log"
    log.write_bytes(b"one\ntw")
    stop = [False]
    chunks = follow(log, from_start=True, poll_interval=0.01, stop=lambda: stop[0])
    assert next(chunks).lines == ["one"]
    with open(log, "ab") as handle:
        handle.write(b"o\r\nthree")
    got = []
    for _ in range(100):  # "three" has no newline yet: it waits
        got += next(chunks).lines
    assert got == ["two"]
    stop[0] = True
    rest = list(chunks)
    assert (rest[-1].lines, rest[-1].first_line_no, rest[-1].event) == (["three"], 3, "end")


# ---- (3) SIGTERM / SIGINT close every open session, emit, exit 0 ----------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_closes_open_sessions_and_exits_0(tmp_path, tiny_checkpoint, loaded, sig):
    log = tmp_path / "sig.log"
    log.write_text("")
    watch = Watch(tmp_path, tiny_checkpoint, str(log), "--all", "--idle-timeout", "600")
    watch.wait_ready()
    append(log, LINES[:1500])
    assert watch.stop(sig) == 0
    events = watch.events()
    assert {e["closed"] for e in events} == {"signal"}
    assert_same_as_batch(events, batch_sessions(loaded, LINES[:1500]))


# ---- (4) memory bound ------------------------------------------------------------------------------
def test_max_open_sessions_forces_oldest_closed_and_counts(tmp_path, tiny_checkpoint):
    log = tmp_path / "cap.log"
    append(log, LINES[:3000])
    watch = Watch(tmp_path, tiny_checkpoint, str(log), "--from-start", "--no-follow", "--all",
                  "--max-open-sessions", "5")
    assert watch.wait_exit() == 0
    events = watch.events()
    forced = [e for e in events if e["closed"] == "forced"]
    assert forced, "nothing was forced closed"
    assert f"{len(forced):,} forced closed" in watch.stderr()
    last_lines = [e["last_line_no"] for e in forced]
    assert last_lines == sorted(last_lines)  # the least recently active first


def test_tracker_keeps_at_most_max_open_sessions(loaded):
    from tinylogbert.live.session_tracker import SessionTracker

    tracker = SessionTracker(loaded, max_open_sessions=5, emit_all=True, idle_timeout=1e9)
    emitted = []
    for start in range(0, 3000, 250):
        emitted += tracker.feed(LINES[start:start + 250], start + 1)
        assert tracker.open_sessions <= 5
        assert len(tracker._pieces) <= 12  # parsed chunks go once no open session holds them
    emitted += tracker.close_all()
    assert tracker.stats.forced_closed == sum(e["closed"] == "forced" for e in emitted) > 0
    assert sum(e["n_lines"] for e in emitted) >= 3000
    assert not tracker._held


# ---- (5) standard input ----------------------------------------------------------------------------
def test_stdin(tmp_path, tiny_checkpoint, loaded):
    with gzip.open(SMALL_LOG, "rb") as src:
        data = src.read()
    plain = tmp_path / "in.log"
    plain.write_bytes(data)
    with open(plain, "rb") as stdin:
        watch = Watch(tmp_path, tiny_checkpoint, "-", "--all", stdin=stdin)
        assert watch.wait_exit() == 0
    events = watch.events()
    assert {e["closed"] for e in events} == {"end"}
    assert_same_as_batch(events, batch_sessions(loaded, LINES))


# ---- the same rule as build_sessions for windows and time windows (in-process) -----------------
@pytest.mark.parametrize("config", [{"by": "window", "window_size": 20, "window_step": 7},
                                    {"by": "time", "time_window": 30, "time_step": 10},
                                    {"by": "window", "window_size": 16}])
def test_tracker_equals_batch_for_windows(loaded, config):
    from tinylogbert.live.session_tracker import SessionTracker
    from tinylogbert.sessions.grouping import SessionConfig

    sessions = SessionConfig(**config)
    tracker = SessionTracker(loaded, sessions=sessions, emit_all=True, idle_timeout=1e9)
    events = []
    for start in range(0, len(LINES), 749):
        events += tracker.feed(LINES[start:start + 749], start + 1)
    events += tracker.close_all()
    assert_same_as_batch(events, batch_sessions(loaded, LINES, sessions))


# ---- (6) bad input: one line, exit 2 -------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["{tmp}/missing.log"], "no such file"),
    (["{tmp}", "--from-start"], "is a folder"),
    (["{log}", "--format", "no-such-format"], "unknown format"),
    (["{log}", "--format", "bgl", "--from-start", "--no-follow"], "no line matches format 'bgl'"),
    # the same check in every mode: from the end, following, or --no-follow alone
    (["{log}", "--format", "bgl"], "no line matches format 'bgl'"),
    (["{log}", "--format", "bgl", "--no-follow"], "no line matches format 'bgl'"),
    (["{log}", "--format", "bgl", "--from-start"], "no line matches format 'bgl'"),
    (["{log}", "--idle-timeout", "0"], "--idle-timeout must be positive"),
    (["{log}", "--out", "{tmp}/no/such/dir/e.jsonl"], "does not exist"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, tiny_checkpoint, args, message):
    log = tmp_path / "x.log"
    append(log, LINES[:50])
    args = [a.format(tmp=tmp_path, log=log) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "tinylogbert.cli.main", "watch", *args, "--model", str(tiny_checkpoint)],
        check=False, env=ENV, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("watching ")]
    assert len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
