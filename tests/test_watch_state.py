"""``watch --state DIR``: SIGKILL mid-stream, restart with the same command line (as a service
manager would), and the events equal an uninterrupted run's: no loss, no duplicate, no split."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from live_helpers import heldout_lines


def watch_command(log, model, out, *extra: str) -> list[str]:
    # Sessions close only when forced (--max-open-sessions, least recently active first) or at
    # the end: both depend on the lines alone, not on timing, so two runs can be compared.
    return [sys.executable, "-m", "tinylogbert.cli.main", "watch", str(log), "--model",
            str(model), "--from-start", "--no-follow", "--idle-timeout", "3600",
            "--max-open-sessions", "40", "--all", "--out", str(out), *extra]


def read_events(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_sigkill_and_restart_loses_and_repeats_nothing(tiny_checkpoint, tmp_path):
    lines = heldout_lines(16_000)
    log = tmp_path / "hdfs.log"
    log.write_text("\n".join(lines) + "\n")
    size = log.stat().st_size
    reference = tmp_path / "reference.jsonl"
    subprocess.run(watch_command(log, tiny_checkpoint, reference), check=True, timeout=300,
                   capture_output=True)
    out, state = tmp_path / "events.jsonl", tmp_path / "state"
    command = watch_command(log, tiny_checkpoint, out, "--state", str(state))
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saved = state / "watch-state.json"
    deadline = time.monotonic() + 120
    while True:  # kill once the first part is scored, its events written and its state saved
        try:
            offset = json.loads(saved.read_text())["offset"]
        except (FileNotFoundError, ValueError):
            offset = 0
        if offset:
            break
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert 0 < offset < size, "the kill should land mid-stream"
    before = read_events(out)
    assert before, "some sessions were closed and written before the kill"
    restarted = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert restarted.returncode == 0, restarted.stderr
    assert "resuming" in restarted.stderr
    got, want = read_events(out), read_events(reference)
    key = lambda e: (e["session_id"], e["first_line_no"])  # noqa: E731
    assert len({key(e) for e in got}) == len(got), "an event repeated"
    assert sorted(got, key=key) == sorted(want, key=key)
    assert sum(e["n_lines"] for e in got) == len(lines)  # every line in exactly one session
    # the same command again: everything was read, nothing is written twice
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and read_events(out) == got


def test_sigterm_with_state_keeps_sessions_open_for_the_restart(tiny_checkpoint, tmp_path):
    lines = heldout_lines(3000)
    log = tmp_path / "hdfs.log"
    log.write_text("\n".join(lines[:1500]) + "\n")
    reference = tmp_path / "reference.jsonl"
    whole = tmp_path / "whole.log"
    whole.write_text("\n".join(lines) + "\n")
    subprocess.run(watch_command(whole, tiny_checkpoint, reference), check=True, timeout=300,
                   capture_output=True)
    out, state = tmp_path / "events.jsonl", tmp_path / "state"
    command = watch_command(log, tiny_checkpoint, out, "--state", str(state))
    command.remove("--no-follow")
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    saved = state / "watch-state.json"
    deadline = time.monotonic() + 120
    while not (saved.exists() and json.loads(saved.read_text())["next_line_no"] == 1501):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # a service manager's stop: open sessions are saved
    assert proc.wait(timeout=60) == 0
    with open(log, "a") as f:  # the log grows while the watch is down
        f.write("\n".join(lines[1500:]) + "\n")
    command.append("--no-follow")  # (to end the test: read to the end and close)
    restarted = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert restarted.returncode == 0, restarted.stderr
    key = lambda e: (e["session_id"], e["first_line_no"])  # noqa: E731
    got = read_events(out)
    want = read_events(reference)
    assert sorted(map(key, got)) == sorted(map(key, want))  # no session lost or split
    assert sum(e["n_lines"] for e in got) == len(lines)


# ---- the saved state holds the sessions themselves (in-process) ---------------------------------
def _trackers(tiny_checkpoint, clock):
    from tinylogbert.live.session_tracker import SessionTracker
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    detector = TinyLogBERTDetector.load(tiny_checkpoint, runtime="auto")
    return lambda: SessionTracker(detector, emit_all=True, idle_timeout=60,
                                  clock=lambda: clock[0], keep_text=True)


def _two_block_log() -> tuple[list[str], str, str]:
    """Held-out HDFS lines with a NameSystem line naming two blocks (``BLOCK* ask ... to
    delete blk_A blk_B``) after A's last line and before B's last."""
    import re

    lines = heldout_lines(2000)
    seen: dict[str, list[int]] = {}
    for i, line in enumerate(lines):
        for block in set(re.findall(r"blk_-?\d+", line)):
            seen.setdefault(block, []).append(i)
    a = next(b for b, at in seen.items() if 500 < at[-1] < 560)
    b = next(b for b, at in seen.items() if at[0] < 560 and 600 < at[-1] < 1500)
    stamp = " ".join(lines[559].split()[:2])
    lines.insert(560, f"{stamp} 19 INFO dfs.FSNamesystem: BLOCK* ask 10.251.43.21:50010 to "
                      f"delete  {a} {b}")
    return lines, a, b


def _run(make, clock, lines, between=None) -> list[dict]:
    """Lines 1-561 at t=0, 562-1500 at t=50, an idle close at t=100 (A closes, B, which had a
    line at t=50, stays open), ``between`` (a restart), the rest at t=120, then the end."""
    clock[0] = 0.0
    tracker = make()
    events = tracker.feed(lines[:561], 1)
    clock[0] = 50.0
    events += tracker.feed(lines[561:1500], 562)
    clock[0] = 100.0
    events += tracker.close_idle()
    if between is not None:
        tracker, more = between(tracker)
        events += more
    clock[0] = 120.0
    events += tracker.feed(lines[1500:], 1501)
    return events + tracker.close_all()


def test_a_line_of_two_sessions_does_not_reopen_the_closed_one_after_a_restart(
        tiny_checkpoint, tmp_path):
    """The two-block line is held by B (open) after A closed: the restarted watch has B with
    it and no second A, as the uninterrupted run."""
    from tinylogbert.live.state import WatchState, restore

    clock = [0.0]
    make = _trackers(tiny_checkpoint, clock)
    lines, a, b = _two_block_log()
    log = tmp_path / "hdfs.log"
    log.write_text("\n".join(lines) + "\n")
    reference = _run(make, clock, lines)

    def restart(tracker):
        WatchState(tmp_path / "state", log).save(tracker, 1, 2, 1501, None)
        saved = WatchState(tmp_path / "state", log).load()
        assert saved.tracker is not None and saved.n_held == len(tracker._held)
        fresh = make()
        return fresh, restore(fresh, fresh.feed, saved)

    got = _run(make, clock, lines, restart)
    key = lambda e: (e["session_id"], e["first_line_no"])  # noqa: E731
    assert sorted(got, key=key) == sorted(reference, key=key)
    assert [e["session_id"] for e in got].count(a) == 1
    (b_event,) = [e for e in got if e["session_id"] == b]
    assert b_event["first_line_no"] < 561 < b_event["last_line_no"]


def test_a_version_1_state_file_still_resumes(tiny_checkpoint, tmp_path):
    """A state folder saved by the previous release (the held lines) is read and resumed."""
    from tinylogbert.live.state import WatchState, restore

    clock = [0.0]
    make = _trackers(tiny_checkpoint, clock)
    lines = heldout_lines(2000)
    log = tmp_path / "hdfs.log"
    log.write_text("\n".join(lines) + "\n")
    reference = _run(make, clock, lines)
    folder = tmp_path / "state"

    def restart(tracker):
        state = tracker.state()
        (folder / "watch-state.json").parent.mkdir(exist_ok=True)
        (folder / "watch-state.json").write_text(json.dumps({
            "version": 1, "path": str(log.resolve()), "inode": 1, "offset": 2,
            "next_line_no": 1501, "out_size": None, "format": tracker.format.name,
            "t0": None, "last_time": None, "held": [[n, t] for n, t, _ in state["lines"]]}))
        saved = WatchState(folder, log).load()
        assert saved.tracker is None and saved.n_held == len(state["lines"]) > 0
        fresh = make()
        return fresh, restore(fresh, fresh.feed, saved)

    got = _run(make, clock, lines, restart)
    key = lambda e: (e["session_id"], e["first_line_no"])  # noqa: E731
    assert sorted(got, key=key) == sorted(reference, key=key)


def test_a_state_file_of_another_version_is_a_one_line_error(tiny_checkpoint, tmp_path):
    log = tmp_path / "hdfs.log"
    log.write_text("\n".join(heldout_lines(50)) + "\n")
    state = tmp_path / "state"
    state.mkdir()
    (state / "watch-state.json").write_text(json.dumps({"version": 99, "path": str(log)}))
    run = subprocess.run(watch_command(log, tiny_checkpoint, tmp_path / "e.jsonl", "--state",
                                       str(state)), capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "another version" in run.stderr and "remove the folder" in run.stderr
    assert "Traceback" not in run.stderr
