"""Issue 11 (hardening): no request can stall the server, nobody gets in where they don't
belong, every misuse gets a clear answer early. Each test here fails without its fix."""
from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, SMALL_LOG
from tinylogbert.errors import FormatError, LogInputError, LogTooLargeError
from tinylogbert.io.log_reader import gunzip_bounded, read_log_bytes

HOSTILE = r"^(?P<Content>(a+)+)$"  # exponential under a backtracking engine
HOSTILE_LINES = ["a" * 40 + "!"] * 50
EMPTY_MEMBER = gzip.compress(b"", mtime=0)  # 20 bytes


def cli_env() -> dict[str, str]:
    """Subprocesses run this worktree's ``core``, whatever the editable install points at."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}


# ---- 2. patterns run in linear time -------------------------------------------------------------
def test_a_backtracking_format_parses_in_linear_time():
    from tinylogbert.io.log_parser import parse_log

    log = read_log_bytes("\n".join(HOSTILE_LINES).encode())
    start = time.monotonic()
    parsed = parse_log(log, HOSTILE)
    assert time.monotonic() - start < 2
    assert parsed.n_unparsed == 50  # no line ends in 'a': nothing parses, nothing lost
    assert len(parsed) == 50


def test_a_backtracking_session_pattern_runs_in_linear_time():
    from tinylogbert.io.log_parser import parse_log
    from tinylogbert.sessions.grouping import SessionConfig, build_sessions

    parsed = parse_log(read_log_bytes("\n".join(HOSTILE_LINES).encode()), "generic")
    start = time.monotonic()
    index = build_sessions(parsed, SessionConfig(by="id", id_pattern=r"^(a+)+$"))
    assert time.monotonic() - start < 2
    assert sorted(index.members.tolist()) == list(range(50))  # every line in a session


@pytest.mark.parametrize("pattern, words", [
    (r"^(?P<Content>(?=x).*)$", "look-around"),
    (r"^(?P<Level>\w+) (?P<Content>\1.*)$", "backreference"),
])
def test_a_format_re2_cannot_run_is_refused_with_the_reason(pattern, words):
    from tinylogbert.io.log_formats import get_format

    with pytest.raises(FormatError, match=f"cannot run in linear time.*{words}"):
        get_format(pattern)


# ---- 2. one bounded, linear-time gzip reader ----------------------------------------------------
def test_many_gzip_members_cost_linear_time():
    data = EMPTY_MEMBER * 99_000
    start = time.monotonic()
    assert gunzip_bounded(data) == b""
    assert time.monotonic() - start < 3  # the old loop took 3.6 s for 80,000
    with pytest.raises(LogInputError, match="more than 100,000 members"):
        gunzip_bounded(EMPTY_MEMBER * 200_000)


def test_gzip_is_bounded_by_decompressed_bytes_everywhere():
    bomb = gzip.compress(b"INFO ok\n" * 1_000_000)
    with pytest.raises(LogTooLargeError, match="more than 1,000,000 bytes"):
        read_log_bytes(bomb, "bomb.gz", max_bytes=1_000_000)
    multi = b"".join(gzip.compress(f"line {i}\n".encode(), mtime=0) for i in range(300))
    assert read_log_bytes(multi).lines.to_pylist() == [f"line {i}" for i in range(300)]


def test_the_dashboard_reads_uploads_through_the_bounded_reader(monkeypatch):
    from dashboard import scoring
    from dashboard.workspace import parse_label_bytes

    monkeypatch.setattr(scoring, "MAX_LOG_BYTES", 100_000)
    with pytest.raises(LogTooLargeError):
        scoring.LogUpload.from_bytes(gzip.compress(b"INFO ok\n" * 100_000), "bomb.log.gz")
    from tinylogbert.errors import LabelError

    with pytest.raises(LabelError, match="truncated"):
        parse_label_bytes(gzip.compress(b"BlockId,Label\nblk_1,Normal\n")[:-4], "labels.csv.gz")


# ---- 2. the real server: hostile requests do not stall it ---------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_checkpoint):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinylogbert.cli.serve", "--model", str(tiny_checkpoint),
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                httpx.get(f"{url}/v1/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start in 90 s"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)  # SIGTERM is honoured: no request is stuck holding the GIL
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            pytest.fail("the server ignored SIGTERM")


def test_health_answers_within_a_second_while_hostile_requests_run(server):
    results: list[httpx.Response] = []

    def hostile() -> None:
        with httpx.Client(base_url=server, timeout=60) as c:
            results.append(c.post("/v1/score", json={"lines": HOSTILE_LINES, "format": HOSTILE}))
            results.append(c.post("/v1/score", json={
                "lines": HOSTILE_LINES, "format": "generic",
                "sessions": {"by": "id", "id_pattern": r"(a+)+$"}}))
            results.append(c.post("/v1/score/file", data={"format": HOSTILE},
                                  files={"file": ("a.log", "\n".join(HOSTILE_LINES).encode())}))

    threads = [threading.Thread(target=hostile) for _ in range(2)]
    for t in threads:
        t.start()
    worst = 0.0
    with httpx.Client(base_url=server, timeout=5) as c:
        while any(t.is_alive() for t in threads):
            start = time.monotonic()
            assert c.get("/v1/health").status_code == 200
            worst = max(worst, time.monotonic() - start)
            time.sleep(0.05)
    for t in threads:
        t.join()
    assert worst < 1.0, f"/v1/health took {worst:.2f} s"
    assert len(results) == 6 and all(r.status_code < 500 for r in results), results
    print(f"worst /v1/health latency under hostile patterns: {worst * 1000:.0f} ms")


def test_many_member_gzip_upload_is_answered_quickly(server):
    body = EMPTY_MEMBER * 200_000  # 4 MB
    start = time.monotonic()
    response = httpx.post(f"{server}/v1/score/file", files={"file": ("m.log.gz", body)},
                          timeout=60)
    elapsed = time.monotonic() - start
    assert 400 <= response.status_code < 500 or response.status_code == 200, response.text
    assert elapsed < 10, f"{elapsed:.1f} s"
    print(f"200,000 gzip members answered {response.status_code} in {elapsed:.2f} s")


# ---- 4. every misuse gets a clear answer, early ---------------------------------------------------
LATIN1_LINE = b"081109 203615 148 INFO dfs.DataNode: caf\xe9 blk_1\n"
THUNDERBIRD = Path(__file__).resolve().parent / "data" / "thunderbird" / "Thunderbird_200.log"


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinylogbert.cli.main", *args], capture_output=True, check=False,
                          text=True, timeout=timeout, cwd=ROOT, env=cli_env())


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in words:
        assert word in lines[0], proc.stderr


def test_score_out_in_a_missing_folder_fails_before_the_work(tmp_path):
    # the model does not exist either: the --out check comes first, before any loading
    proc = cli("score", str(SMALL_LOG), "--model", str(tmp_path / "nowhere"),
               "--out", "/no/such/dir/x.csv")
    assert_one_line_error(proc, "--out /no/such/dir/x.csv", "does not exist")
    proc = cli("score", str(SMALL_LOG), "--model", str(tmp_path / "nowhere"),
               "--out", str(tmp_path / "ok.csv"), "--sessions-out", str(tmp_path))
    assert_one_line_error(proc, "--sessions-out", "is a folder")


def test_train_out_an_existing_file_fails_before_training(tmp_path):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    start = time.monotonic()
    proc = cli("train", str(SMALL_LOG), "--out", str(existing))
    assert time.monotonic() - start < 30  # no training happened (it takes minutes by default)
    assert_one_line_error(proc, "is a file")
    assert existing.read_text() == "keep me"
    other = tmp_path / "folder"
    other.mkdir()
    (other / "thesis.tex").write_text("x")
    assert_one_line_error(cli("train", str(SMALL_LOG), "--out", str(other)), "other files")


def test_a_corrupt_model_config_is_a_one_line_error(tiny_checkpoint, tmp_path):
    import shutil

    from tinylogbert.errors import CheckpointError

    bad = tmp_path / "bad"
    shutil.copytree(tiny_checkpoint, bad)
    (bad / "config.json").write_text('{"hidden_size": "wide"}')
    assert_one_line_error(cli("score", str(SMALL_LOG), "--model", str(bad),
                              "--out", str(tmp_path / "o.csv")))
    # past any integrity check: transformers' multi-line error becomes one CheckpointError line
    with pytest.raises(CheckpointError, match="not a valid model config") as error:
        _load_config_only(bad)
    assert "\n" not in str(error.value)


def _load_config_only(folder: Path):
    from tinylogbert.model import checkpoint

    real = checkpoint.sha256_file
    try:  # make the weights hash match whatever is there, to reach the config
        checkpoint.sha256_file = lambda path: "same"
        return checkpoint.load_weights(folder, "same", 10, 8)
    finally:
        checkpoint.sha256_file = real


def test_formats_into_head_ends_quietly():
    proc = subprocess.run(f"{sys.executable} -m tinylogbert.cli.main formats | head -1", shell=True, check=False,
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=cli_env())
    assert proc.returncode == 0 and proc.stdout.strip() and proc.stderr == "", proc.stderr


def test_a_non_utf8_log_scores_with_a_warning_that_counts_the_lines(tiny_checkpoint, tmp_path):
    lines = gzip.decompress(SMALL_LOG.read_bytes()).splitlines()[:400]
    lines[3] += b" \xff\xfe"
    lines[10] = b"\xc3" + lines[10]
    log = tmp_path / "latin.log"
    log.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "o.csv"
    proc = cli("score", str(log), "--model", str(tiny_checkpoint), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "warning: " in proc.stderr and "2 of 400 lines" in proc.stderr
    import pandas as pd

    assert len(pd.read_csv(out)) == 400  # nothing lost


def test_training_on_a_handful_of_lines_warns(tmp_path):
    lines = gzip.decompress(SMALL_LOG.read_bytes()).splitlines()[:40]
    log = tmp_path / "few.log"
    log.write_bytes(b"\n".join(lines) + b"\n")
    proc = cli("train", str(log), "--out", str(tmp_path / "m"), "--epochs", "1",
               "--head-epochs", "1", "--steps-per-epoch", "1", "--hidden", "32", "--layers", "1",
               "--heads", "2", "--vocab-size", "120", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "warning: trained on only 40 lines" in proc.stderr
    assert "not be meaningful" in proc.stderr


@pytest.fixture(scope="module")
def scored_csvs(tiny_detector, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    result = tiny_detector.score(SMALL_LOG, embeddings=False)
    result.write_lines_csv(out / "lines.csv")
    result.write_sessions_csv(out / "sessions.csv")
    return out / "lines.csv", out / "sessions.csv"


def test_evaluate_refuses_a_lines_csv_at_session_level(scored_csvs):
    from conftest import SMALL_LABELS

    lines, _ = scored_csvs
    proc = cli("evaluate", "--scores", str(lines), "--labels", str(SMALL_LABELS))
    assert_one_line_error(proc, "LINES CSV", "--sessions-out", "--level line")


@pytest.mark.parametrize("header, words", [
    ("node,status", "session_id,Label"),
    ("line_no,label", "use --level line"),
    ("BlockId,verdict", "session_id,Label"),
])
def test_evaluate_checks_label_columns_by_name(scored_csvs, tmp_path, header, words):
    _, sessions = scored_csvs
    labels = tmp_path / "labels.csv"
    labels.write_text(f"{header}\nblk_1,Normal\n")
    proc = cli("evaluate", "--scores", str(sessions), "--labels", str(labels))
    assert_one_line_error(proc, "do not fit --level session", words)


def test_evaluate_warns_when_labels_cover_few_sessions(scored_csvs, tmp_path, tiny_checkpoint):
    from conftest import SMALL_LABELS

    _, sessions = scored_csvs
    few = tmp_path / "few.csv"
    few.write_text("\n".join(SMALL_LABELS.read_text().splitlines()[:31]) + "\n")  # 30 of 300
    proc = cli("evaluate", "--scores", str(sessions), "--labels", str(few),
               "--model", str(tiny_checkpoint))
    assert proc.returncode == 0, proc.stderr
    assert "warning: the labels cover only 30 of the 300 sessions (10%)" in proc.stderr


def test_fit_check_names_the_reasons(tiny_detector):
    from tinylogbert.scoring.fit_check import fit_warnings

    parsed = tiny_detector.parse(THUNDERBIRD)
    (warning,) = fit_warnings(tiny_detector, parsed)
    assert "'thunderbird'" in warning and "'hdfs'" in warning
    assert "100% of its lines are unknown" in warning
    assert f"tinylogbert train {THUNDERBIRD}" in warning
    assert fit_warnings(tiny_detector, tiny_detector.parse(SMALL_LOG)) == []


def test_the_cli_warns_when_the_model_does_not_fit(tiny_checkpoint, tmp_path):
    proc = cli("score", str(THUNDERBIRD), "--model", str(tiny_checkpoint),
               "--out", str(tmp_path / "o.csv"))
    assert proc.returncode == 0, proc.stderr
    assert "warning: the model does not fit" in proc.stderr
    assert "tinylogbert train" in proc.stderr


def test_the_api_returns_the_fit_warnings(tiny_checkpoint):
    from fastapi.testclient import TestClient
    from tinylogbert.api.anomaly_routes import create_app
    from tinylogbert.api.negotiation import WARNINGS_HEADER

    text = THUNDERBIRD.read_text()
    with TestClient(create_app(tiny_checkpoint)) as c:
        body = c.post("/v1/score", json={"lines": text.splitlines()}).json()
        assert len(body["warnings"]) == 1 and "does not fit" in body["warnings"][0]
        assert len(body["lines"]) == 200
        csv = c.post("/v1/score/file", files={"file": ("tb.log", text.encode())},
                     headers={"Accept": "text/csv"})
        assert csv.status_code == 200 and "does not fit" in csv.headers[WARNINGS_HEADER]
        hdfs = c.post("/v1/score/file", files={"file": ("h.log.gz", SMALL_LOG.read_bytes())})
        assert hdfs.json()["warnings"] == []
        latin = c.post("/v1/score/file", files={"file": ("l.log", LATIN1_LINE)})
        assert any("1 of 1 line held bytes" in w for w in latin.json()["warnings"])


def test_the_dashboard_shows_the_fit_warning_and_opens_training(tiny_checkpoint, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TINYLOGBERT_MODEL", str(tiny_checkpoint))
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120).run()
    at.file_uploader(key="log_file").upload("tb.log", THUNDERBIRD.read_bytes(), "text/plain")
    at.run()
    assert not at.exception
    assert any("does not fit" in w.value for w in at.warning)
    train = next(e for e in at.expander if "Train a new model" in e.label)
    assert train.proto.expanded


def test_bench_writes_outside_the_tracked_results(tmp_path):
    from tinylogbert.cli.main import DEFAULT_BENCH_DIR, build_parser

    args = build_parser().parse_args(["bench", "--quick"])
    assert Path(args.out_dir) == DEFAULT_BENCH_DIR
    assert "benchmarks" not in Path(args.out_dir).parts
    assert build_parser().parse_args(["bench", "--out-dir", str(tmp_path)]).out_dir == tmp_path


# ---- 3. nobody gets in where they don't belong --------------------------------------------------
@pytest.fixture(scope="module")
def keyed_client(tiny_checkpoint):
    from fastapi.testclient import TestClient
    from tinylogbert.api.anomaly_routes import create_app
    from tinylogbert.api.settings import ApiSettings

    with TestClient(create_app(tiny_checkpoint, ApiSettings(api_key="k3y", max_body_bytes=1000))) as c:
        yield c


def test_the_api_key_is_checked_before_the_body_is_read(keyed_client):
    c = keyed_client
    malformed = c.post("/v1/score", content=b'{"lines": [', headers={"content-type": "application/json"})
    assert malformed.status_code == 401 and malformed.json()["error"] == "unauthorized"
    huge = c.post("/v1/score", content=b"x" * 5000, headers={"content-type": "application/json"})
    assert huge.status_code == 401  # not 413: nothing about the body is looked at
    keyed = c.post("/v1/score", content=b'{"lines": [', headers={
        "content-type": "application/json", "Authorization": "Bearer k3y"})
    assert keyed.status_code == 400 and keyed.json()["error"] == "malformed_json"
    assert c.get("/v1/health").status_code == 200


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_docs_need_the_key_too(keyed_client, path):
    assert keyed_client.get(path).status_code == 401
    assert keyed_client.get(path, headers={"X-API-Key": "k3y"}).status_code == 200


def test_the_docs_page_loads_nothing_from_another_host(keyed_client):
    import re

    page = keyed_client.get("/docs", headers={"X-API-Key": "k3y"})
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "/v1/score/file" in html and "ScoreResponse" in html  # it documents the API
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert "<script" not in html.lower() and "<link" not in html.lower()


def test_the_dashboard_listens_on_loopback_and_never_phones_home():
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["browser"]["gatherUsageStats"] is False
    app = (ROOT / "dashboard" / "app.py").read_text()
    icon = ROOT / "dashboard" / "static" / "icon.png"
    assert "page_icon=PAGE_ICON" in app and icon.read_bytes().startswith(b"\x89PNG")


def test_the_dashboard_password_comes_before_any_page(tiny_checkpoint, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TINYLOGBERT_MODEL", str(tiny_checkpoint))
    monkeypatch.setenv("TINYLOGBERT_DASHBOARD_PASSWORD", "open sesame")
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120).run()
    assert not at.exception
    assert len(at.file_uploader) == 0 and len(at.sidebar.slider) == 0  # no page content
    at.text_input(key="login_password").input("open sesam")  # in a form: sent on submit
    at.button[0].click().run()
    assert any("Wrong password" in e.value for e in at.error) and len(at.file_uploader) == 0
    at.text_input(key="login_password").input("open sesame")
    at.button[0].click().run()
    assert not at.exception and len(at.file_uploader) == 2  # the Upload page: log and labels


def test_dashboard_training_is_bounded_and_cleaned_up(tmp_path, monkeypatch):
    import tempfile

    from tinylogbert.errors import TinyLogBERTError
    from tinylogbert.model.tinylogbert_model import ModelConfig
    from tinylogbert.model.training import TrainConfig

    from dashboard import models

    tiny = models.TrainingPreset(
        "tiny", ModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=64),
        TrainConfig(epochs=1, head_epochs=1, steps_per_epoch=2, batch_size=16), vocab_size=200)
    lines = read_log_bytes(SMALL_LOG.read_bytes())
    monkeypatch.setenv("TINYLOGBERT_DASHBOARD_MAX_TRAIN_LINES", "1000")
    with pytest.raises(TinyLogBERTError, match="at most 1,000 lines"):
        models.train_model(lines, tiny)
    monkeypatch.delenv("TINYLOGBERT_DASHBOARD_MAX_TRAIN_LINES")
    with pytest.raises(TinyLogBERTError, match="at most 5 epochs"):
        models.TrainingLimits().check(10, TrainConfig(epochs=50))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = models.train_model(lines, tiny)
    assert folder.parent.parent == tmp_path and (folder / "detector.json").is_file()
    models.remove_trained_folder(folder)
    assert not folder.parent.exists()
    models.remove_trained_folder(ROOT / "checkpoint")  # never touches a folder it did not make
    assert (ROOT / "checkpoint" / "detector.json").is_file()


def test_checkpoint_integrity_covers_every_file(tiny_checkpoint, tmp_path):
    import json
    import shutil

    from tinylogbert.errors import CheckpointError
    from tinylogbert.model.checkpoint import MANIFEST_FILE, OPTIONAL_FILES, REQUIRED_FILES
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    manifest = json.loads((tiny_checkpoint / MANIFEST_FILE).read_text())
    present = {name for name in OPTIONAL_FILES if (tiny_checkpoint / name).exists()}  # model.onnx
    assert set(manifest["files"]) == set(REQUIRED_FILES) | present
    for name, change in [
        ("detector.json", lambda m: {**m, "log_format": {**m["log_format"],
                                                         "regex": r"^(?P<Content>(a+)+)$"}}),
        ("line_vocab.json", lambda m: {**m, "lines": ["planted", *m["lines"][1:]]}),
        ("tokenizer.json", None),
        ("config.json", lambda m: {**m, "hidden_dropout_prob": 0.5}),
    ]:
        bad = tmp_path / name
        shutil.copytree(tiny_checkpoint, bad)
        path = bad / name
        if change is None:
            path.write_text(path.read_text().replace('"[UNK]"', '"[UNK2]"', 1))
        else:
            path.write_text(json.dumps(change(json.loads(path.read_text()))))
        with pytest.raises(CheckpointError, match=f"{name}: sha256 mismatch"):
            TinyLogBERTDetector.load(bad)
    legacy = tmp_path / "legacy"
    shutil.copytree(tiny_checkpoint, legacy)
    (legacy / MANIFEST_FILE).unlink()
    assert TinyLogBERTDetector.load(legacy).threshold_  # older folders still load
    TinyLogBERTDetector.load(ROOT / "checkpoint")  # the shipped one (no manifest yet) too


def test_init_from_takes_local_safetensors_only(tmp_path):
    from tinylogbert.errors import CheckpointError
    from tinylogbert.model.checkpoint import check_init_from

    with pytest.raises(CheckpointError, match="not a local folder"):
        check_init_from("bert-base-uncased")
    pickled = tmp_path / "bert"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(CheckpointError, match="pickled weights"):
        check_init_from(str(pickled))
    proc = cli("train", str(SMALL_LOG), "--out", str(tmp_path / "m"), "--init-from",
               "prajjwal1/bert-mini")
    assert_one_line_error(proc, "not a local folder")
