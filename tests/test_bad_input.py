"""One bad-input corpus, fed to every entry point: the CLI, the API, the dashboard's loader and
the Python API. Each input gets a clear error or a warning: never a traceback, a hang or a lost
line (every input line is in the output). Uses the tiny test model; no training here."""
from __future__ import annotations

import gzip
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from conftest import SMALL_LABELS, SMALL_LOG
from tinylogbert.errors import TinyLogBERTError
from tinylogbert.io import log_reader

HDFS = gzip.decompress(SMALL_LOG.read_bytes()).splitlines()[:300]
LIMIT = 20_000_000  # decompressed bytes, for every entry point in this module
BOMB_SIZE = 3 * LIMIT


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    lines: int | None = None  # scored: every line accounted for; None: a clear error
    error: str = ""  # words of the error (or of the API's error)
    warning: str = ""  # words of a warning that must accompany the scores
    api_error: str | None = None  # when the API's limits make it an error instead
    fmt: str = "auto"


def _text(lines: list[bytes], end: bytes = b"\n") -> bytes:
    return end.join(lines) + end


def _corpus() -> list[Case]:
    hdfs = _text(HDFS)
    bad_utf8 = list(HDFS)
    bad_utf8[5] += b" \xff\xfe"
    bad_utf8[7] = b"\xc3(" + bad_utf8[7]
    long_line = list(HDFS[:100]) + [HDFS[0] + b" " + b"x" * 5_000_000]
    return [
        Case("empty", b"", error="empty"),
        Case("blank", b"\n \n\t\n", error="empty"),
        Case("binary", bytes(range(256)) * 64, error="binary"),
        Case("nul-bytes", hdfs[:2000] + b"\x00\x00\x00" + hdfs[2000:], error="binary"),
        Case("truncated-gzip", gzip.compress(hdfs)[:-30], error="truncated"),
        Case("not-really-gzip", b"\x1f\x8b\x08 garbage", error="cannot be decompressed"),
        Case("gzip-bomb", gzip.compress(b"INFO ok\n" * (BOMB_SIZE // 8)), error="more than"),
        Case("many-members", gzip.compress(b"", mtime=0) * 200_000, error="members"),
        Case("gzip-in-gzip", gzip.compress(gzip.compress(hdfs)), error="gzip inside gzip"),
        Case("non-utf8", _text(bad_utf8), lines=300, warning="2 of 300 lines"),
        Case("crlf", _text(HDFS, b"\r\n"), lines=300),
        Case("no-final-newline", hdfs.rstrip(b"\n"), lines=300),
        Case("multi-member-gzip", gzip.compress(_text(HDFS[:150])) + gzip.compress(_text(HDFS[150:])),
             lines=300),
        Case("5mb-line", _text(long_line), lines=101, api_error="line_too_long"),
        Case("backtracking-format", _text([b"a" * 40 + b"!"] * 50), fmt=r"^(?P<Content>(a+)+)$",
             error="no line matches"),
        Case("lookahead-format", hdfs, fmt=r"^(?P<Content>(?=x).*)$", error="linear time"),
    ]


CORPUS = _corpus()
IDS = [c.name for c in CORPUS]


@pytest.fixture(autouse=True)
def _small_log_limit(monkeypatch):
    monkeypatch.setattr(log_reader, "DEFAULT_MAX_LOG_BYTES", LIMIT)
    import dashboard.scoring

    monkeypatch.setattr(dashboard.scoring, "MAX_LOG_BYTES", LIMIT)


@pytest.fixture(scope="module")
def api(tiny_checkpoint):
    from fastapi.testclient import TestClient
    from tinylogbert.api.anomaly_routes import create_app
    from tinylogbert.api.settings import ApiSettings

    with TestClient(create_app(tiny_checkpoint, ApiSettings(max_log_bytes=LIMIT))) as client:
        yield client


def _one_line(message: str) -> None:
    assert message and "\n" not in message.strip() and "Traceback" not in message


def _expected_error(case, exc: Exception) -> None:
    """A corpus entry that must fail did, with its message, on one line."""
    assert case.lines is None, exc
    assert case.error in str(exc)
    _one_line(str(exc))


# ---- the log corpus ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_cli(case, tiny_checkpoint, tmp_path, capsys):
    from tinylogbert.cli.main import main

    log = tmp_path / ("in.log.gz" if case.data[:2] == b"\x1f\x8b" else "in.log")
    log.write_bytes(case.data)
    out = tmp_path / "lines.csv"
    start = time.monotonic()
    code = main(["score", str(log), "--model", str(tiny_checkpoint), "--out", str(out),
                 "--format", case.fmt])
    assert time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    if case.lines is None:
        assert code == 2 and err.startswith("error: ") and case.error in err, err
        _one_line(err)
    else:
        assert code == 0, err
        assert len(pd.read_csv(out)) == case.lines
        if case.warning:
            assert "warning: " in err and case.warning in err, err


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_api(case, api):
    start = time.monotonic()
    response = api.post("/v1/score/file", files={"file": ("in.log", case.data)},
                        data={"format": case.fmt})
    assert time.monotonic() - start < 30
    body = response.json()
    if case.lines is None or case.api_error:
        assert 400 <= response.status_code < 500, body
        _one_line(body["message"])
        assert (case.api_error or "") in body["error"]
        assert case.error in body["message"] or case.api_error, body
    else:
        assert response.status_code == 200, body
        assert [line["line_no"] for line in body["lines"]] == list(range(1, case.lines + 1))
        if case.warning:
            assert any(case.warning in w for w in body["warnings"]), body["warnings"]


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_dashboard_loader(case, tiny_detector):
    from dashboard.score_settings import ScoreSettings
    from dashboard.scoring import LogUpload, score_upload

    try:
        upload = LogUpload.from_bytes(case.data, "in.log")
        ws = score_upload(tiny_detector, upload, ScoreSettings(log_format=case.fmt), "tiny", "k")
    except TinyLogBERTError as exc:
        _expected_error(case, exc)
        return
    assert case.lines is not None
    assert ws.report.n_lines == case.lines == ws.scored.line_table.num_rows
    if case.warning:
        assert ws.report.replaced_bytes and ws.report.invalid_lines == 2


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_python_api(case, tiny_detector):
    from tinylogbert.scoring.fit_check import input_warnings

    try:
        lines = log_reader.read_log_bytes(case.data, "in.log")
        result = tiny_detector.score(lines, log_format=case.fmt, embeddings=False)
    except TinyLogBERTError as exc:
        _expected_error(case, exc)
        return
    assert case.lines is not None
    assert result.line_table["line_no"].to_pylist() == list(range(1, case.lines + 1))
    if case.warning:
        assert any(case.warning in w for w in input_warnings(lines))


# ---- label files and checkpoints -----------------------------------------------------------------
@pytest.fixture(scope="module")
def sessions_csv(tiny_detector, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bad") / "sessions.csv"
    tiny_detector.score(SMALL_LOG, embeddings=False).write_sessions_csv(path)
    return path


LABELS = {
    "empty": (b"", "needs a header"),
    "binary": (bytes(range(256)) * 8, ""),
    "one-column": (b"BlockId\nblk_1\n", "two columns"),
    "wrong-columns": (b"node,status\nn1,Normal\n", "do not fit --level session"),
    "line-level": (b"line_no,label\n1,Normal\n", "use --level line"),
    "unknown-value": (b"BlockId,Label\nblk_1,perhaps\n", "unknown label value"),
    "no-match": (b"BlockId,Label\nblk_nothing,Anomaly\n", "none of the 300 sessions"),
    "truncated-gzip": (gzip.compress(SMALL_LABELS.read_bytes())[:-10], ""),
}


@pytest.mark.parametrize("name", list(LABELS))
def test_bad_label_files(name, sessions_csv, tmp_path, capsys):
    from tinylogbert.cli.main import main

    from dashboard.workspace import parse_label_bytes

    data, words = LABELS[name]
    path = tmp_path / ("labels.csv.gz" if data[:2] == b"\x1f\x8b" else "labels.csv")
    path.write_bytes(data)
    code = main(["evaluate", "--scores", str(sessions_csv), "--labels", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and words in err, err
    _one_line(err)
    try:  # the dashboard's label reader: an error, or labels that then match nothing
        parse_label_bytes(data, "labels.csv")
    except TinyLogBERTError as exc:
        _one_line(str(exc))


def _corrupt(folder: Path, how: str) -> None:
    if how == "missing-tokenizer":
        (folder / "tokenizer.json").unlink()
    elif how == "truncated-weights":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])
    elif how == "garbage-detector-json":
        (folder / "detector.json").write_bytes(b"\x00\xffnot json")
    elif how == "planted-regex":
        meta = json.loads((folder / "detector.json").read_text())
        meta["log_format"]["regex"] = r"^(?P<Content>(a+)+)$"
        (folder / "detector.json").write_text(json.dumps(meta))
    elif how == "garbage-manifest":
        (folder / "checkpoint.sha256.json").write_text("[]")
    elif how == "legacy-truncated-weights":  # no manifest: the weights' own hash still guards
        (folder / "checkpoint.sha256.json").unlink()
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-1])


CHECKPOINT_CASES = {
    "missing-tokenizer": "missing tokenizer.json",
    "truncated-weights": "sha256 mismatch",
    "garbage-detector-json": "sha256 mismatch",
    "planted-regex": "detector.json: sha256 mismatch",
    "garbage-manifest": "not a checkpoint manifest",
    "legacy-truncated-weights": "sha256 mismatch",
}


@pytest.mark.parametrize("how", list(CHECKPOINT_CASES))
def test_corrupted_checkpoints(how, tiny_checkpoint, tmp_path, capsys):
    from tinylogbert.api.anomaly_routes import create_app
    from tinylogbert.cli.main import main
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    folder = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, folder)
    _corrupt(folder, how)
    words = CHECKPOINT_CASES[how]
    code = main(["score", str(SMALL_LOG), "--model", str(folder), "--out", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err
    assert code == 2 and words in err, err
    _one_line(err)
    for load in (TinyLogBERTDetector.load, create_app):  # Python API / dashboard, and the API
        with pytest.raises(TinyLogBERTError, match=words):
            load(folder)
