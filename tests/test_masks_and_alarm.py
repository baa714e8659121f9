"""User masking rules (``--mask``) and the line alarm that lets one fault line flag its window.

On real loghub OpenSSH lines (the 2k sample): a rule that masks user names makes ``Invalid user
magnos`` and ``Invalid user guest`` one message; rules are checked, saved with the model and
applied when scoring. On a small windowed log, a burst of fault lines raises its window over
the threshold even where the window's mean rarity does not.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from conftest import ROOT, tiny_detector_factory
from tinylogbert import TinyLogBERTDetector
from tinylogbert.errors import FormatError
from tinylogbert.io.log_reader import read_log_file, read_log_lines
from tinylogbert.io.user_masks import apply_masks, parse_mask
from tinylogbert.scoring.anomaly_score import (
    ALARM_LINE_SHARE,
    AUTO_DEVIATIONS,
    NAT_RESOLUTION,
    line_alarm_threshold,
)

from benchmarks.faults import inject, plan_bursts

OPENSSH = ROOT / "sample_data" / "loghub_2k" / "OpenSSH_2k.log.gz"
ZOOKEEPER = ROOT / "sample_data" / "loghub_2k" / "Zookeeper_2k.log.gz"
USER_MASK = r"user \w+=>user"


def test_masks_replace_remove_and_keep_nulls():
    words = pa.array(["sshd invalid user magnos from", "sshd invalid user guest from", None, ""])
    assert apply_masks(words, [USER_MASK]).to_pylist() == [
        "sshd invalid user from", "sshd invalid user from", None, ""]
    assert apply_masks(words, [r"\bfrom$"]).to_pylist()[0] == "sshd invalid user magnos"
    assert apply_masks(words, [r"invalid user (\w+)=>\1"]).to_pylist()[1] == "sshd guest from"
    assert apply_masks(words, []) is words


@pytest.mark.parametrize("spec, reason", [
    (r"(?<=user) \w+", "linear time"),
    (r"user (\w+)=>\2", "group"),
    ("=>x", "empty"),
    ("user (", "invalid"),
])
def test_bad_masks_are_clear_errors(spec, reason):
    with pytest.raises(FormatError, match=reason):
        parse_mask(spec)
    with pytest.raises(FormatError):
        TinyLogBERTDetector(masks=(spec,))


def test_masks_are_saved_and_applied_when_scoring(tmp_path):
    lines = read_log_file(OPENSSH).lines.to_pylist()[:400]
    det = tiny_detector_factory(masks=(USER_MASK,)).fit(read_log_lines(lines, "ssh"))
    words = set(det.parse(read_log_lines(lines, "ssh")).words.to_pylist())
    assert not any("magnos" in w for w in words)  # the user name is gone from what it reads
    loaded = TinyLogBERTDetector.load(det.save(tmp_path / "m"))
    assert loaded.masks == (USER_MASK,)
    a = det.score(read_log_lines(lines, "ssh"), embeddings=False)
    b = loaded.score(read_log_lines(lines, "ssh"), embeddings=False)
    np.testing.assert_allclose(a.line_scores, b.line_scores, atol=1e-4)
    plain = tiny_detector_factory().fit(read_log_lines(lines, "ssh"))
    assert len(det.line_vocab_) < len(plain.line_vocab_) or \
        np.mean(det.line_class_counts_) > np.mean(plain.line_class_counts_)


def test_cli_train_mask_error_is_one_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "tinylogbert.cli.main", "train", str(OPENSSH),
                          "--out", str(tmp_path / "m"), "--mask", r"(?<=x)y", "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.startswith("error: ") and "Traceback" not in run.stderr
    assert not (tmp_path / "m").exists()


def test_line_alarm_threshold_tolerates_the_top_lines():
    scores = np.arange(3000, dtype=float)
    k = 1 + int(np.ceil(ALARM_LINE_SHARE * 3000))  # 4th highest: 2996
    t = line_alarm_threshold(scores)
    assert 2995 < t <= 2996 and (scores >= t).sum() == k
    assert line_alarm_threshold(np.array([5.0, 5.0] + [1.0] * 10)) < 5.0  # ties flagged alike
    # Every line alike (a log of identical requests): the bar is not a hair above them.
    assert line_alarm_threshold(np.full(500, 0.8)) == pytest.approx(
        0.8 + AUTO_DEVIATIONS * NAT_RESOLUTION)
    assert line_alarm_threshold(np.array([])) == 0.0


def test_a_fault_burst_flags_its_window():
    """Zookeeper's first 1,500 lines train (windows of 20 lines); the rest, with six bursts of
    three fault lines injected, is scored: a burst's window is flagged by its lines."""
    lines = read_log_file(ZOOKEEPER).lines.to_pylist()
    det = tiny_detector_factory().fit(read_log_lines(lines[:1500], "zk"))
    test = lines[1500:]
    parsed = det.parse(read_log_lines(test, "zk"))
    bursts = plan_bursts(parsed, np.arange(len(test)), seed=0)
    text, where = inject(test, parsed, bursts)
    result = det.score(read_log_lines(text, "zk"), embeddings=False)
    calib = det.calibration_
    assert calib.alarm_gain > 0 and det.line_threshold_ == calib.line_threshold
    lines_flagged = result.line_table["is_anomaly"].to_numpy(zero_copy_only=False)
    sid = result.line_table["session_id"].to_pylist()
    frame = result.session_frame.set_index("session_id")
    caught = [bool(frame.loc[sid[w[0]].split(";")[0], "is_anomaly"]) for w in where]
    assert sum(caught) >= 5, caught
    # Wherever a line is flagged, its window is too (the alarm), and it is graded as flagged.
    for i in np.flatnonzero(lines_flagged):
        s = sid[i].split(";")[0]
        assert frame.loc[s, "is_anomaly"] and frame.loc[s, "grade"] in ("high", "critical")
    clean = ~frame.index.isin([sid[w[0]].split(";")[0] for w in where])
    assert frame.is_anomaly[clean].mean() <= 0.1
