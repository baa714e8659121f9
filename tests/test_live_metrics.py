"""Prometheus metrics: ``watch --metrics-port`` serves them while it runs, and promtool (the
Prometheus project's own checker, Debian package ``prometheus``) accepts the exposition."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

from live_helpers import free_port, heldout_lines, metric_value, promtool_check, wait_http


def test_promtool_refuses_a_broken_exposition():
    """The checker the tests rely on can fail: a sample of an undeclared type is refused."""
    bad = b"# TYPE x_total counter\nx_total{a=\"1\"} not-a-number\n"
    assert promtool_check(bad).returncode != 0


def test_watch_metrics_port_counts_lines_sessions_and_anomalies(tiny_checkpoint, tmp_path):
    lines = heldout_lines(600)
    log = tmp_path / "live.log"
    log.write_text("\n".join(lines) + "\n")
    port = free_port()
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinylogbert.cli.main", "watch", str(log), "--model",
         str(tiny_checkpoint), "--from-start", "--idle-timeout", "0.5", "--all", "--out",
         str(events), "--poll", "0.05", "--metrics-port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_http(url, proc=proc)
        deadline = time.monotonic() + 60
        while True:  # every session closes once idle for 0.5 s
            text = urllib.request.urlopen(url, timeout=5).read()
            closed = metric_value(text.decode(), "tinylogbert_sessions_closed_total")
            n_events = len(events.read_text().splitlines()) if events.exists() else 0
            if n_events and closed == n_events:
                break
            assert time.monotonic() < deadline, text.decode()
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    body = text.decode()
    assert metric_value(body, "tinylogbert_lines_total", source=str(log)) == 600
    import json

    written = [json.loads(x) for x in events.read_text().splitlines()]
    anomalous = sum(e["is_anomaly"] for e in written)
    assert metric_value(body, "tinylogbert_anomalous_sessions_total") == anomalous
    assert metric_value(body, "tinylogbert_scoring_seconds_count") >= 1
    assert metric_value(body, "tinylogbert_drift_warning", source=str(log)) in (0, 1)
    check = promtool_check(text)
    assert check.returncode == 0, check.stdout + check.stderr
