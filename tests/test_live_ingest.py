"""Live ingestion on ``serve``: the real OpenTelemetry Python SDK (OTLP/HTTP log exporter)
ships HDFS lines to a real uvicorn server on 127.0.0.1; the live sessions and scores equal
``score``'s on the same lines. Plus NDJSON/plain text, backpressure and the API key."""
from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from live_helpers import free_port, heldout_lines, metric_value, promtool_check, wait_http


def batch_sessions(detector, lines: list[str]) -> dict[str, tuple[float, int]]:
    from tinylogbert import pipeline

    result = pipeline.run(detector, "\n".join(lines) + "\n",
                          pipeline.ScoreOptions(embeddings=False)).result
    table = result.session_table.to_pandas()
    return {str(r.session_id): (float(r.score), int(r.n_lines)) for r in table.itertuples()}


def live_sessions(events: list[dict], source: str) -> dict[str, tuple[float, int]]:
    return {e["session_id"]: (float(e["score"]), int(e["n_lines"])) for e in events
            if e["event"] == "session" and e["source"] == source}


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint):
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    return TinyLogBERTDetector.load(tiny_checkpoint, runtime="auto")


def ship_with_otel_sdk(port: int, service: str, lines: list[str], gzip_it: bool,
                      contexts: list | None = None) -> None:
    """``lines`` as the SDK's log records; ``contexts``: each record's (its span's) context."""
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    provider = LoggerProvider(resource=Resource.create({"service.name": service,
                                                        "host.name": "node-1"}))
    exporter = OTLPLogExporter(endpoint=f"http://127.0.0.1:{port}/v1/logs", timeout=30,
                               compression=Compression.Gzip if gzip_it else
                               Compression.NoCompression)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, max_export_batch_size=128))
    logger = provider.get_logger("hdfs-replay")
    for i, line in enumerate(lines):
        logger.emit(body=line, context=contexts[i] if contexts else None)
    assert provider.force_flush(30_000)
    provider.shutdown()


def test_otel_sdk_to_serve_gives_the_scores_of_score(tiny_checkpoint, loaded, tmp_path):
    lines = heldout_lines(900, skip=20_000)  # later blocks of the held-out log
    a, b = lines[:500], lines[500:]
    port = free_port()
    events = tmp_path / "events.jsonl"
    err = open(tmp_path / "serve.err", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinylogbert.cli.main", "serve", "--model", str(tiny_checkpoint),
         "--port", str(port), "--events", str(events), "--all", "--idle-timeout", "600",
         "--log-format", "json"], stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/health", proc=proc)
        ship_with_otel_sdk(port, "hdfs-a", a, gzip_it=False)
        ship_with_otel_sdk(port, "hdfs-b", b, gzip_it=True)
        # NDJSON as Fluent Bit's json_lines / Vector's http sink send it, into a third stream
        ndjson = "".join(json.dumps({"log": x, "host": "fb-1"}) + "\n" for x in a)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/ingest?source=fluent-bit",
                       content=ndjson, headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 202 and r.json()["accepted"] == len(a), r.text
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").content
    finally:
        proc.send_signal(signal.SIGTERM)  # closes every open session, writes its event
        proc.wait(timeout=60)
        err.close()
    stderr = (tmp_path / "serve.err").read_text()
    # uvicorn shuts down cleanly on SIGTERM, then re-raises the signal (exit -15)
    assert proc.returncode in (0, -signal.SIGTERM), stderr
    assert "Application shutdown complete" in stderr
    assert all(json.loads(x)["message"] for x in stderr.splitlines()), stderr  # JSON log lines
    written = [json.loads(x) for x in events.read_text().splitlines()]
    for source, part in (("hdfs-a/node-1", a), ("hdfs-b/node-1", b), ("fluent-bit", a)):
        live, batch = live_sessions(written, source), batch_sessions(loaded, part)
        assert live.keys() == batch.keys(), source
        for sid, (score, n) in batch.items():
            assert live[sid][1] == n and live[sid][0] == pytest.approx(score, abs=1e-6), sid
    text = metrics.decode()
    assert metric_value(text, "tinylogbert_lines_total", source="hdfs-b/node-1") == len(b)
    check = promtool_check(metrics)
    assert check.returncode == 0, check.stdout + check.stderr


def test_records_with_trace_ids_are_sessioned_by_them_as_score_does(tiny_checkpoint, loaded,
                                                                    tmp_path):
    """A Go service's logfmt lines, shipped by the OTel SDK inside its spans (the trace id is
    the record's, not the line's) and as NDJSON records with a ``trace_id`` key: the live
    sessions are the traces, with ``score``'s scores on the same lines carrying
    ``trace_id=...``; records outside any span are lines without an id, as in ``score``."""
    import random

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("shop")
    spans = [tracer.start_span(f"GET /orders/{k}") for k in range(12)]
    rng = random.Random(5)
    bodies, traced = [], []
    for i in range(240):  # about three requests in flight at a time
        bodies.append(f"time=2024-03-01T12:{i // 60:02d}:{i % 60:02d}.000Z level=info "
                      f'service=orders msg="step {rng.randrange(6)} of order {rng.randrange(9)}"')
        traced.append(None if i % 13 == 5 else spans[min(i // 20 + rng.randrange(3), 11)])
    hexes = [span and format(span.get_span_context().trace_id, "032x") for span in traced]
    contexts = [span and trace.set_span_in_context(span) for span in traced]
    port = free_port()
    events = tmp_path / "events.jsonl"
    err = open(tmp_path / "serve.err", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinylogbert.cli.main", "serve", "--model", str(tiny_checkpoint),
         "--port", str(port), "--events", str(events), "--all", "--idle-timeout", "600"],
        stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/health", proc=proc)
        ship_with_otel_sdk(port, "orders", bodies, gzip_it=False, contexts=contexts)
        ndjson = "".join(json.dumps({"log": body, **({"trace_id": h} if h else {})}) + "\n"
                         for body, h in zip(bodies, hexes))
        r = httpx.post(f"http://127.0.0.1:{port}/v1/ingest?source=fluent-bit",
                       content=ndjson, headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 202 and r.json()["accepted"] == len(bodies), r.text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        err.close()
    assert proc.returncode in (0, -signal.SIGTERM), (tmp_path / "serve.err").read_text()
    written = [json.loads(x) for x in events.read_text().splitlines()]
    batch = batch_sessions(loaded, [body + (f" trace_id={h}" if h else "")
                                    for body, h in zip(bodies, hexes)])
    assert {h for h in hexes if h} < batch.keys() and any(k.startswith("no-id:") for k in batch)
    for source in ("orders/node-1", "fluent-bit"):
        live = live_sessions(written, source)
        assert live.keys() == batch.keys(), source
        for sid, (score, n) in batch.items():
            assert live[sid][1] == n and live[sid][0] == pytest.approx(score, abs=1e-6), sid


@pytest.fixture(scope="module")
def app_factory(tiny_checkpoint):
    from tinylogbert.api.anomaly_routes import create_app
    from tinylogbert.api.ingest_routes import LiveSettings
    from tinylogbert.api.settings import ApiSettings
    from tinylogbert.live.ingest import IngestConfig

    def make(**live):
        queue = live.pop("max_queue_lines", 100_000)
        key = live.pop("api_key", None)
        settings = ApiSettings(model_dir=Path(tiny_checkpoint), api_key=key)
        return create_app(settings=settings,
                          live=LiveSettings(IngestConfig(max_queue_lines=queue, emit_all=True),
                                            **live))
    return make


def test_ingest_accounts_for_every_record_and_otlp_json_partial_success(app_factory, tmp_path):
    from fastapi.testclient import TestClient

    events = tmp_path / "ev.jsonl"
    lines = heldout_lines(60)
    with TestClient(app_factory(message_field="msg", events_path=events)) as client:
        body = [{"msg": x} for x in lines[:30]] + [{"other": 1}, 5]
        r = client.post("/v1/ingest", json=body)  # Fluent Bit 'format json': one array
        assert r.status_code == 202
        assert r.json()["accepted"] == 30 and r.json()["rejected"] == 2
        r = client.post("/v1/ingest?source=plain", content="\n".join(lines[30:]) + "\n",
                        headers={"content-type": "text/plain"})
        assert r.json()["accepted"] == 30
        r = client.post("/v1/ingest", content=gzip.compress(b"{not json\n"),
                        headers={"content-type": "application/x-ndjson",
                                 "content-encoding": "gzip"})
        assert r.status_code == 400 and "not JSON" in r.json()["message"]
        otlp = {"resourceLogs": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "svc"}}]},
            "scopeLogs": [{"logRecords": [{"body": {"stringValue": lines[0]}}, {}]}]}]}
        r = client.post("/v1/logs", json=otlp)
        assert r.status_code == 200
        assert r.json()["partialSuccess"]["rejectedLogRecords"] == "1"
        r = client.post("/v1/logs", content=b"\xff\x00garbage",
                        headers={"content-type": "application/x-protobuf"})
        assert r.status_code == 400
        assert client.app.state.live_ingest.drain(30)
    sources = {json.loads(x)["source"] for x in events.read_text().splitlines()}
    assert {"default", "plain", "svc"} <= sources  # closed at shutdown, one tracker each


def test_a_full_queue_answers_429_with_retry_after_and_drops_nothing(app_factory):
    from fastapi.testclient import TestClient
    from google.rpc.status_pb2 import Status

    lines = heldout_lines(40)
    app = app_factory(max_queue_lines=25)
    with TestClient(app) as client:
        ingest = app.state.live_ingest
        gate = threading.Event()
        ingest.prepare = gate.wait  # the worker is held before its first step
        assert client.post("/v1/ingest", content="\n".join(lines[:20])).status_code == 202
        r = client.post("/v1/ingest", content="\n".join(lines[20:30]))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceRequest,
        )
        req = ExportLogsServiceRequest()
        rec = req.resource_logs.add().scope_logs.add()
        for x in lines[20:30]:
            rec.log_records.add().body.string_value = x
        r = client.post("/v1/logs", content=req.SerializeToString(),
                        headers={"content-type": "application/x-protobuf"})
        assert r.status_code == 429 and r.headers["retry-after"]
        assert Status.FromString(r.content).code == 8  # RESOURCE_EXHAUSTED
        r = client.post("/v1/ingest", content="\n".join(lines[:26]))
        assert r.status_code == 413  # more than the whole queue: never retryable
        assert ingest.queued_lines == 20
        gate.set()
        assert ingest.drain(30)
        assert client.post("/v1/ingest", content="\n".join(lines[20:30])).status_code == 202
        assert ingest.drain(30)
        assert ingest.stats.accepted_lines == 30
        text = client.get("/metrics").text
        assert metric_value(text, "tinylogbert_ingest_rejected_total") == 2


def test_the_api_key_guards_ingestion_and_metrics(app_factory):
    from fastapi.testclient import TestClient

    with TestClient(app_factory(api_key="s3cret")) as client:
        for path in ("/v1/ingest", "/v1/logs"):
            assert client.post(path, content="x").status_code == 401
        assert client.get("/metrics").status_code == 401
        r = client.post("/v1/ingest", content="a line\n", headers={"X-API-Key": "s3cret"})
        assert r.status_code == 202
        assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_otlp_json_trace_ids_are_read_as_hex():
    """OTLP JSON writes ids in hex (protobuf's JSON mapping would read them as base64); an
    all-zero id is no trace; a record's attributes' id keys come along; bad hex is a 400."""
    from tinylogbert.errors import LogInputError
    from tinylogbert.live.shipper_payloads import parse_otlp

    trace_id = "5b8efff798038103d269b633813fc60c"
    records = [{"body": {"stringValue": "a"}, "traceId": trace_id, "spanId": "eee19b7ec3c1b174"},
               {"body": {"stringValue": "b"}, "traceId": "0" * 32},
               {"body": {"stringValue": "c"}, "attributes": [
                   {"key": "request_id", "value": {"stringValue": "r-1"}}]}]
    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}
    request, decoded = parse_otlp(json.dumps(body).encode(), json_body=True)
    assert request.resource_logs[0].scope_logs[0].log_records[0].trace_id.hex() == trace_id
    assert decoded.batches[0].ids == [{"trace_id": trace_id}, {}, {"request_id": "r-1"}]
    records[0]["traceId"] = "not-hex"
    with pytest.raises(LogInputError, match="traceId 'not-hex' is not hex"):
        parse_otlp(json.dumps(body).encode(), json_body=True)
