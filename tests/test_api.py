"""REST API tests (FastAPI ``TestClient``): every endpoint, limit, error path and the API key."""
from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import threading
import time

import anyio
import httpx
import numpy as np
import pytest
import torch
from conftest import ROOT, SMALL_LOG
from fastapi.testclient import TestClient
from tinylogbert.api.anomaly_routes import create_app
from tinylogbert.api.negotiation import prefers_csv
from tinylogbert.api.settings import ApiSettings
from tinylogbert.errors import CheckpointError, TinyLogBERTError
from tinylogbert.scoring.detector import TinyLogBERTDetector

LIMITS = ApiSettings(
    max_body_bytes=200_000, max_log_bytes=300_000, max_lines=500, max_line_length=300,
    max_explained_sessions=4,
    torch_threads=torch.get_num_threads(),  # leave the thread count of later tests alone
)


@pytest.fixture(scope="module")
def hdfs_lines() -> list[str]:
    with gzip.open(SMALL_LOG, "rt") as f:
        return f.read().splitlines()[:300]


@pytest.fixture(scope="module")
def detector(tiny_checkpoint):
    return TinyLogBERTDetector.load(tiny_checkpoint, runtime="auto")  # as the API loads it


@pytest.fixture(scope="module")
def client(tiny_checkpoint):
    with TestClient(create_app(tiny_checkpoint, LIMITS)) as c:
        yield c


def assert_error(response, status: int, error: str, limit: str | None = None) -> dict:
    """Every error is JSON with a code and a one-line message (and the limit, when one was hit)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert body["message"] and "\n" not in body["message"]
    if limit:
        assert body["limit"] == limit
        assert body["limit_value"] == getattr(LIMITS, limit)
        assert limit in body["message"] and f"{getattr(LIMITS, limit):,}" in body["message"]
    return body


# ---- service endpoints --------------------------------------------------------------------------
def test_health_reports_a_loaded_model(client):
    body = client.get("/v1/health").json()
    assert body["status"] == "ok" and body["model_loaded"] is True
    assert body["scoring"] == 0 and body["waiting"] == 0


def test_model_metadata_matches_the_checkpoint(client, detector):
    body = client.get("/v1/model").json()
    assert body["threshold"] == detector.threshold_
    assert body["vocab_size"] == detector.tokenizer_.vocab_size
    assert body["parameters"] == detector.info()["parameters"] > 0
    assert body["training_summary"]["lines"] == detector.training_summary_["lines"]
    assert body["limits"] == LIMITS.limits()


def test_docs_and_schema_publish_the_limits(client):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    request = schema["components"]["schemas"]["ScoreRequest"]["properties"]["lines"]
    assert request["maxItems"] == LIMITS.max_lines
    assert request["items"]["maxLength"] == LIMITS.max_line_length


# ---- POST /v1/score -----------------------------------------------------------------------------
def test_score_returns_every_line_and_session_as_core_does(client, detector, hdfs_lines):
    body = client.post("/v1/score", json={"lines": hdfs_lines}).json()
    expected = detector.score(hdfs_lines)
    assert [row["line_no"] for row in body["lines"]] == list(range(1, len(hdfs_lines) + 1))
    assert [row["score"] for row in body["lines"]] == expected.line_table["score"].to_pylist()
    assert [row["session_id"] for row in body["lines"]] == expected.line_table["session_id"].to_pylist()
    assert [row["score"] for row in body["sessions"]] == expected.session_table["score"].to_pylist()
    assert body["threshold"] == detector.threshold_
    assert body["summary"]["lines"] == len(hdfs_lines)
    assert body["summary"]["sessions"] == len(body["sessions"]) == expected.n_sessions
    assert body["format"] == "hdfs"  # the name, as --format takes it
    assert body["format_detail"].startswith("hdfs") and body["format_detail"] != "hdfs"


def test_the_response_matches_its_published_schema(client, hdfs_lines):
    """The hand-rendered JSON and the OpenAPI schema agree (format, format_detail included)."""
    from tinylogbert.api.schemas import ScoreResponse

    body = client.post("/v1/score", json={"lines": hdfs_lines[:50]}).json()
    ScoreResponse.model_validate(body)
    published = client.get("/openapi.json").json()["components"]["schemas"]["ScoreResponse"]
    assert {"format", "format_detail"} <= set(published["required"])
    assert set(published["properties"]) == set(body)


def test_top_lines_only_for_the_highest_scoring_anomalous_sessions(client, hdfs_lines):
    # A threshold below every score flags every session: more than max_explained_sessions.
    body = client.post("/v1/score", json={"lines": hdfs_lines, "threshold": -1e9}).json()
    sessions = body["sessions"]
    assert body["threshold"] == -1e9 and all(s["is_anomaly"] for s in sessions)
    explained = [s for s in sessions if s["top_lines"] is not None]
    assert len(explained) == body["explained_sessions"] == LIMITS.max_explained_sessions
    assert min(s["score"] for s in explained) >= max(
        s["score"] for s in sessions if s["top_lines"] is None
    )
    line_sessions = {row["line_no"]: row["session_id"].split(";") for row in body["lines"]}
    for session in explained:
        top = session["top_lines"]
        assert 1 <= len(top) <= 3 and top[0]["line_no"] == session["top_line_no"]
        assert [t["score"] for t in top] == sorted((t["score"] for t in top), reverse=True)
        assert all(session["session_id"] in line_sessions[t["line_no"]] for t in top)


def test_threshold_override_and_no_explanations(client, hdfs_lines):
    body = client.post("/v1/score", json={"lines": hdfs_lines, "threshold": 1e9}).json()
    assert body["summary"]["anomalous_sessions"] == 0 and body["explained_sessions"] == 0
    assert all(s["top_lines"] is None and s["severity"] == "normal" for s in body["sessions"])
    body = client.post("/v1/score", json={"lines": hdfs_lines, "threshold": -1e9,
                                          "top_lines": 0}).json()
    assert body["explained_sessions"] == 0


def test_session_options_reach_core(client, hdfs_lines):
    body = client.post("/v1/score", json={
        "lines": hdfs_lines[:95], "sessions": {"by": "window", "window_size": 10},
    }).json()
    assert "windows of 10 lines" in body["sessions_by"]
    assert len(body["sessions"]) == 10


# ---- POST /v1/score/file ------------------------------------------------------------------------
def test_file_upload_scores_like_the_json_endpoint(client, hdfs_lines):
    data = "\n".join(hdfs_lines).encode()
    from_json = client.post("/v1/score", json={"lines": hdfs_lines}).json()
    for name, payload in [("part.log", data), ("part.log.gz", gzip.compress(data))]:
        body = client.post("/v1/score/file", files={"file": (name, payload)}).json()
        assert body["source"] == name
        assert body["lines"] == from_json["lines"]
        assert body["sessions"] == from_json["sessions"]


def test_file_upload_as_csv_is_the_clis_file(client, detector, hdfs_lines):
    data = gzip.compress("\n".join(hdfs_lines).encode())
    response = client.post("/v1/score/file", files={"file": ("part.log.gz", data)},
                           data={"threshold": "2.5"}, headers={"Accept": "text/csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="part.scored.csv"' in response.headers["content-disposition"]
    assert response.content == detector.score(hdfs_lines, threshold=2.5).lines_csv_bytes()


def test_json_rows_in_pieces_equal_the_whole_table():
    import pyarrow as pa
    from tinylogbert.api.rendering import json_rows

    table = pa.table({"n": list(range(20)), "x": [0.5, float("nan"), float("inf")] + [1.0] * 17})
    extra = [{"k": i * 2} for i in range(20)]
    rows = json.loads(b"".join(json_rows(table, ["n", "x"], extra, chunk=7)))
    expected = [{"n": i, "x": x, "k": i * 2}
                for i, x in enumerate([0.5, None, None] + [1.0] * 17)]
    assert rows == expected
    assert json.loads(b"".join(json_rows(table.slice(0, 0), ["n"]))) == []


@pytest.mark.parametrize("accept, csv", [
    (None, False), ("*/*", False), ("application/json", False), ("text/csv", True),
    ("text/csv, */*", True), ("application/json, text/csv", False),
    ("application/json;q=0.5, text/csv", True), ("text/*", True), ("text/csv;q=0", False),
    ("text/html", False),
])
def test_accept_header_negotiation(accept, csv):
    assert prefers_csv(accept) is csv


# ---- limits -------------------------------------------------------------------------------------
def test_body_over_the_limit_is_refused_before_reading(client):
    declared = client.post("/v1/score", content=b"x" * (LIMITS.max_body_bytes + 1),
                           headers={"content-type": "application/json"})
    assert_error(declared, 413, "body_too_large", "max_body_bytes")
    chunks = iter([b'{"lines": ["'] + [b"a" * 50_000] * 5 + [b'"]}'])  # chunked: no length
    streamed = client.post("/v1/score", content=chunks, headers={"content-type": "application/json"})
    assert_error(streamed, 413, "body_too_large", "max_body_bytes")
    upload = client.post("/v1/score/file",
                         files={"file": ("big.log", b"a b\n" * (LIMITS.max_body_bytes // 4))})
    assert_error(upload, 413, "body_too_large", "max_body_bytes")


def test_too_many_lines(client):
    many = ["INFO ok"] * (LIMITS.max_lines + 1)
    body = assert_error(client.post("/v1/score", json={"lines": many}), 413, "too_many_lines",
                        "max_lines")
    assert f"{LIMITS.max_lines + 1:,} lines" in body["message"]
    upload = client.post("/v1/score/file", files={"file": ("many.log", "\n".join(many).encode())})
    assert_error(upload, 413, "too_many_lines", "max_lines")


def test_line_too_long_names_the_line(client):
    lines = ["INFO ok", "x" * (LIMITS.max_line_length + 1)]
    body = assert_error(client.post("/v1/score", json={"lines": lines}), 422, "line_too_long",
                        "max_line_length")
    assert "line 2 " in body["message"]
    upload = client.post("/v1/score/file", files={"file": ("long.log", "\n".join(lines).encode())})
    assert "line 2 of long.log" in assert_error(upload, 422, "line_too_long", "max_line_length")["message"]


def test_gzip_bomb_is_stopped_at_the_log_size_limit(client):
    bomb = gzip.compress(b"INFO ok\n" * (LIMITS.max_log_bytes // 4))
    assert len(bomb) < LIMITS.max_body_bytes
    response = client.post("/v1/score/file", files={"file": ("bomb.log.gz", bomb)})
    assert_error(response, 413, "log_too_large", "max_log_bytes")


# ---- bad input: always 4xx with a clear message -------------------------------------------------
@pytest.mark.parametrize("body, status, error, words", [
    ({"lines": []}, 422, "invalid_request", "lines: List should have at least 1 item"),
    ({"lines": ["ok", 3]}, 422, "invalid_request", "lines.1: Input should be a valid string"),
    ({"lines": "one line"}, 422, "invalid_request", "lines: Input should be a valid list"),
    ({"lines": ["ok"], "treshold": 1}, 422, "invalid_request", "treshold: Extra inputs"),
    ({"lines": ["ok"], "threshold": "high"}, 422, "invalid_request", "threshold:"),
    ({"lines": ["", "  "]}, 422, "log_input_error", "every line is empty"),
    ({"lines": ["ok"], "format": "no-such-format"}, 422, "format_error", "unknown format"),
    ({"lines": ["ok"], "sessions": {"by": "window", "window_size": 5, "window_step": 9}},
     422, "invalid_request", "window_step must not exceed window_size"),
    ({"lines": ["ok"], "sessions": {"by": "id", "id_pattern": "("}}, 422, "format_error",
     "invalid session id pattern"),
    ([1, 2], 422, "invalid_request", "send a JSON object"),
])
def test_invalid_json_requests(client, body, status, error, words):
    response = client.post("/v1/score", json=body)
    assert words in assert_error(response, status, error)["message"]


@pytest.mark.parametrize("content, headers, status, error, words", [
    (b'{"lines": ["a", ', {"content-type": "application/json"}, 400, "malformed_json", "not valid JSON"),
    (b'{"lines": ["\\ud800"]}', {"content-type": "application/json"}, 422, "invalid_request",
     "lines.0:"),
    (b'{"lines": ["a"]}', {}, 422, "invalid_request", "Content-Type: application/json"),
    (b"", {"content-type": "application/json"}, 422, "invalid_request", "send a JSON object"),
])
def test_malformed_bodies(client, content, headers, status, error, words):
    response = client.post("/v1/score", content=content, headers=headers)
    assert words in assert_error(response, status, error)["message"]


@pytest.mark.parametrize("files, data, error, words", [
    ({"file": ("x.bin", bytes(range(256)) * 8)}, {}, "log_input_error", "binary file"),
    ({"file": ("x.log.gz", b"\x1f\x8b\x08garbage")}, {}, "log_input_error", "cannot be decompressed"),
    ({"file": ("x.log", b"")}, {}, "log_input_error", "empty"),
    ({"file": ("x.log", b"INFO ok\n")}, {"threshold": "nan"}, "invalid_request", "threshold:"),
    ({"file": ("x.log", b"INFO ok\n")}, {"window_step": "2"}, "invalid_request",
     "sessions: window_step needs window_size"),
    (None, {"format": "auto"}, "invalid_request", "file: Field required"),
])
def test_bad_uploads(client, files, data, error, words):
    response = client.post("/v1/score/file", files=files, data=data)
    assert words in assert_error(response, 422, error)["message"]


def test_unknown_routes_and_methods_are_json(client):
    assert_error(client.get("/v1/nothing"), 404, "http_404")
    assert_error(client.get("/v1/score"), 405, "http_405")


# ---- API key ------------------------------------------------------------------------------------
def test_api_key_guards_everything_but_health(tiny_checkpoint, hdfs_lines):
    settings = LIMITS.with_overrides(api_key="s3cret-key")
    with TestClient(create_app(tiny_checkpoint, settings)) as c:
        assert c.get("/v1/health").status_code == 200
        missing = c.get("/v1/model")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "API key" in missing.json()["message"]
        assert c.get("/v1/model", headers={"X-API-Key": "wrong"}).json()["error"] == "unauthorized"
        assert c.get("/v1/model", headers={"Authorization": "Bearer s3cret-ke"}).status_code == 401
        assert c.get("/v1/model", headers={"X-API-Key": "s3cret-key"}).status_code == 200
        assert c.get("/v1/model", headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
        assert c.post("/v1/score", json={"lines": hdfs_lines}).status_code == 401
        assert c.post("/v1/score/file", files={"file": ("a.log", b"INFO ok")}).status_code == 401
        ok = c.post("/v1/score", json={"lines": hdfs_lines},
                    headers={"Authorization": "Bearer s3cret-key"})
        assert ok.status_code == 200
        assert c.get("/openapi.json").status_code == 401  # the schema and docs need it too
        schemes = c.get("/openapi.json", headers={"X-API-Key": "s3cret-key"}).json()[
            "components"]["securitySchemes"]
        assert {"HTTPBearer", "APIKeyHeader"} <= set(schemes)


# ---- settings -----------------------------------------------------------------------------------
def test_settings_from_env_and_overrides():
    env = {"TINYLOGBERT_API_KEY": "k", "TINYLOGBERT_MAX_LINES": "1000", "TINYLOGBERT_MODEL": "m"}
    settings = ApiSettings.from_env(env)
    assert settings.api_key == "k" and settings.max_lines == 1000 and str(settings.model_dir) == "m"
    assert "k" not in repr(settings)
    assert settings.with_overrides(max_lines=7, max_line_length=None).max_lines == 7
    assert ApiSettings.from_env({"TINYLOGBERT_API_KEY": ""}).api_key is None
    with pytest.raises(TinyLogBERTError, match="TINYLOGBERT_MAX_LINES must be an integer"):
        ApiSettings.from_env({"TINYLOGBERT_MAX_LINES": "lots"})
    with pytest.raises(TinyLogBERTError, match="max_concurrency"):
        ApiSettings(max_concurrency=0)
    assert ApiSettings().int8 is False
    assert ApiSettings.from_env({"TINYLOGBERT_INT8": "Yes"}).int8 is True
    assert ApiSettings.from_env({"TINYLOGBERT_INT8": "0"}).int8 is False
    with pytest.raises(TinyLogBERTError, match="TINYLOGBERT_INT8 must be one of 1, true"):
        ApiSettings.from_env({"TINYLOGBERT_INT8": "maybe"})
    with pytest.raises(TinyLogBERTError, match="int8 .* must be true or false"):
        ApiSettings(int8="yes")


def test_missing_model_is_a_one_line_error(tmp_path, capsys):
    from tinylogbert.cli.serve import main

    with pytest.raises(CheckpointError):
        create_app(tmp_path / "none")
    assert main(["--model", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


# ---- concurrency --------------------------------------------------------------------------------
def test_health_answers_while_scoring_is_busy(tiny_checkpoint, monkeypatch):
    """With one scoring slot, a second request waits and health still answers at once."""
    app = create_app(tiny_checkpoint, LIMITS.with_overrides(max_concurrency=1))
    service = app.state.service
    real_score = service.detector.score
    release = threading.Event()
    entered = threading.Semaphore(0)
    active, most_active = [0], [0]
    lock = threading.Lock()

    def slow_score(*args, **kwargs):
        with lock:
            active[0] += 1
            most_active[0] = max(most_active[0], active[0])
        entered.release()
        release.wait(10)
        try:
            return real_score(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(service.detector, "score", slow_score)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            responses = []

            async def post():
                responses.append(await client.post("/v1/score", json={"lines": ["INFO a b"] * 50}))

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(post)
                tasks.start_soon(post)
                await anyio.to_thread.run_sync(entered.acquire)  # one request is scoring
                with anyio.fail_after(2):
                    health = (await client.get("/v1/health")).json()
                assert health["scoring"] == 1 and health["waiting"] == 1
                release.set()
            return responses

    responses = anyio.run(scenario)
    assert [r.status_code for r in responses] == [200, 200]
    assert most_active[0] == 1


# ---- the real server --------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_starts_a_loopback_server(tiny_checkpoint):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tinylogbert.cli.serve", "--model", str(tiny_checkpoint),
         "--port", str(port), "--max-lines", "123", "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, "TINYLOGBERT_MAX_LINES": "7"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read().decode()
            try:
                model = httpx.get(f"http://127.0.0.1:{port}/v1/model", timeout=2).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start in 60 s"
                time.sleep(0.2)
        assert model["limits"]["max_lines"] == 123  # the flag beats the environment variable
    finally:
        server.terminate()
        server.wait(10)


def test_serve_registers_as_a_tinylogbert_subcommand(monkeypatch):
    import argparse

    from tinylogbert.cli.serve import register, settings_from_args

    parser = argparse.ArgumentParser(prog="tinylogbert")
    register(parser.add_subparsers(dest="command"))
    monkeypatch.setenv("TINYLOGBERT_MAX_LINES", "77")
    monkeypatch.setenv("TINYLOGBERT_MAX_CONCURRENCY", "3")
    args = parser.parse_args(["serve", "--model", "m", "--port", "9001", "--max-concurrency", "2"])
    settings = settings_from_args(args)
    assert (args.host, args.port) == ("127.0.0.1", 9001)
    assert (settings.max_lines, settings.max_concurrency, str(settings.model_dir)) == (77, 2, "m")
    assert settings.int8 is False  # the flag is absent: the environment's value (unset) holds
    monkeypatch.setenv("TINYLOGBERT_INT8", "1")
    assert settings_from_args(parser.parse_args(["serve"])).int8 is True
    monkeypatch.delenv("TINYLOGBERT_INT8")
    assert settings_from_args(parser.parse_args(["serve", "--int8"])).int8 is True


def test_serve_int8_scores_with_the_quantized_graph(tiny_checkpoint, hdfs_lines):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    with TestClient(create_app(tiny_checkpoint, LIMITS.with_overrides(int8=True))) as c:
        assert c.get("/v1/model").json()["runtime"] == "onnx-int8"
        quantized = c.post("/v1/score", json={"lines": hdfs_lines})
    with TestClient(create_app(tiny_checkpoint, LIMITS)) as c:
        assert c.get("/v1/model").json()["runtime"] == "onnx"
        plain = c.post("/v1/score", json={"lines": hdfs_lines})
    assert quantized.status_code == plain.status_code == 200
    a, b = quantized.json()["lines"], plain.json()["lines"]
    assert [r["line_no"] for r in a] == [r["line_no"] for r in b]
    gap = np.abs(np.array([r["score"] for r in a]) - np.array([r["score"] for r in b]))
    assert 0 < gap.max() < 1.0  # a quantized graph scored (not the float one), and closely
