"""Quiet in a service context: plain progress lines off a terminal, JSON logs for watch/serve."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from conftest import SMALL_LOG


def test_plain_progress_writes_whole_lines_at_its_interval():
    from tinylogbert.cli.progress import PlainProgress, progress_bar

    now = [0.0]
    out = io.StringIO()
    bar = PlainProgress("training", file=out, interval=5.0, clock=lambda: now[0])
    bar.reset(total=100)
    for step in range(1, 101):
        now[0] = step * 0.5  # 50 s in all: about one line per 5 s
        bar.set_postfix(loss="1.000")
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert 9 <= len(lines) <= 11, lines
    assert lines[-1].startswith("training: 100/100 steps") and "loss=1.000" in lines[-1]
    # a StringIO is no terminal: the plain kind is chosen, and quiet writes nothing
    assert isinstance(progress_bar("x", file=io.StringIO()), PlainProgress)
    quiet = io.StringIO()
    q = progress_bar("x", quiet=True, file=quiet)
    q.update(5)
    q.close()
    assert quiet.getvalue() == ""


def test_train_into_a_file_has_no_carriage_returns(tmp_path):
    env = {**os.environ, "TINYLOGBERT_PROGRESS_INTERVAL": "0"}
    with open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.run(
            [sys.executable, "-m", "tinylogbert.cli.main", "train", str(SMALL_LOG), "--out",
             str(tmp_path / "m"), "--epochs", "1", "--head-epochs", "1", "--steps-per-epoch", "3",
             "--hidden", "32", "--layers", "1", "--heads", "2"],
            stdout=subprocess.PIPE, stderr=err, text=True, timeout=300, env=env)
    assert proc.returncode == 0
    text = (tmp_path / "err.txt").read_text()
    assert "\r" not in text
    assert any(line.startswith("mlm: ") and "/3 steps" in line for line in text.splitlines()), text


def test_watch_log_format_json_writes_json_lines(tiny_checkpoint, tmp_path):
    import gzip

    log = tmp_path / "a.log"
    with gzip.open(SMALL_LOG, "rt") as f:
        log.write_text("".join(f.readlines()[:400]))
    proc = subprocess.run(
        [sys.executable, "-m", "tinylogbert.cli.main", "watch", str(log), "--model",
         str(tiny_checkpoint), "--from-start", "--no-follow", "--log-format", "json",
         "--out", str(tmp_path / "ev.jsonl")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stderr.splitlines()]
    assert records[0]["message"].startswith("watching") and records[0]["level"] == "info"
    assert records[-1]["lines"] == 400 and "time" in records[-1]
