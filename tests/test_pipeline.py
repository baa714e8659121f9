"""One pipeline under every front end: the same log and options give the same LINES.csv bytes."""
from __future__ import annotations

import gzip
import subprocess
import sys

import pytest
from conftest import ROOT, SMALL_LOG
from fastapi.testclient import TestClient
from tinylogbert import pipeline
from tinylogbert.api.anomaly_routes import create_app
from tinylogbert.errors import FormatError
from tinylogbert.scoring.detector import TinyLogBERTDetector
from tinylogbert.sessions.grouping import SessionConfig

BGL = ROOT / "sample_data" / "loghub_2k" / "BGL_2k.log.gz"


def _cli(model, log, out, *options) -> bytes:
    proc = subprocess.run([sys.executable, "-m", "tinylogbert.cli.main", "score", str(log), "--model",
                           str(model), "--out", str(out), *options],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes()


def _api(model, log, fields: dict) -> bytes:
    with TestClient(create_app(model)) as client:
        response = client.post("/v1/score/file", files={"file": (log.name, log.read_bytes())},
                               data=fields, headers={"Accept": "text/csv"})
    assert response.status_code == 200, response.text
    return response.content


def _dashboard(detector, log, settings) -> bytes:
    from dashboard.scoring import LogUpload, score_upload

    upload = LogUpload.from_bytes(log.read_bytes(), log.name)
    return score_upload(detector, upload, settings, "model", "key").scored.lines_csv_bytes()


@pytest.mark.parametrize("case", ["hdfs-defaults", "windows-of-7"])
def test_every_front_end_writes_the_same_lines_csv(case, tiny_checkpoint, tmp_path):
    from dashboard.score_settings import ScoreSettings

    detector = TinyLogBERTDetector.load(tiny_checkpoint, runtime="auto")  # as every front end
    if case == "hdfs-defaults":
        log, cli_options, api_fields, sessions = SMALL_LOG, [], {}, None
    else:  # another system, with session options given
        log = tmp_path / "bgl.log"
        log.write_bytes(b"\n".join(gzip.decompress(BGL.read_bytes()).splitlines()[:300]))
        cli_options = ["--sessions", "window", "--window", "7"]
        api_fields = {"sessions_by": "window", "window_size": "7"}
        sessions = SessionConfig(by="window", window_size=7)
    python = pipeline.run(detector, log, pipeline.ScoreOptions(sessions=sessions)).result
    expected = python.lines_csv_bytes()
    assert expected.count(b"\n") == python.n_lines + 1
    assert _cli(tiny_checkpoint, log, tmp_path / "lines.csv", *cli_options) == expected
    assert _api(tiny_checkpoint, log, api_fields) == expected
    assert _dashboard(detector, log, ScoreSettings(sessions=sessions)) == expected


def test_auto_prefers_the_trained_format_and_a_named_format_must_parse(tiny_detector):
    lines = pipeline.read(SMALL_LOG)
    parsed = pipeline.parse(lines, "auto", tiny_detector.format_)
    assert parsed.format.name == tiny_detector.format_.name
    with pytest.raises(FormatError, match="no line matches"):
        pipeline.parse(lines, "apache")


def test_time_windows_default_to_the_format_everywhere():
    """The API used to mean 60 s where the CLI meant the format's default (0)."""
    from tinylogbert.api.schemas import SessionOptions

    assert SessionOptions(by="time").config() == SessionConfig(by="time")
    with pytest.raises(ValueError, match="time_step needs time_window"):
        SessionOptions(by="time", time_step=1.0)


def test_run_reports_input_repairs_and_misfit(tiny_detector):
    text = (b"081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block "
            b"blk_1 terminating \xff\xfe\n")
    out = pipeline.run(tiny_detector, text * 3, name="bytes.log")
    assert out.result.n_lines == 3
    assert any("not valid UTF-8" in w for w in out.warnings)
