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
