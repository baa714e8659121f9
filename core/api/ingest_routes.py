"""Live ingestion routes on ``serve``: ``POST /v1/logs`` (OTLP/HTTP logs, protobuf or JSON) and
``POST /v1/ingest`` (newline-delimited text or JSON lines), both into ``live.ingest.LiveIngest``.

Answers as the shippers expect: OTLP gets an ``ExportLogsServiceResponse`` in the request's own
encoding (``partial_success`` counts records without a body), and 429 with ``Retry-After`` when
the queue is full (503 while the server stops), with a ``google.rpc.Status`` body; ``/v1/ingest``
gets 202 with counts. ``POST /v1/ingest/flush`` closes and scores the open sessions now. With
``serve --state`` a request is answered only once its lines are in the write-ahead log
(``live.state.IngestState``). The API key (``ApiKeyGate``) applies to all of them.

Note: no ``from __future__ import annotations`` (FastAPI reads the endpoints' annotations).
"""
import json
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import anyio.to_thread
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from tinylogbert.api.errors import ApiError, limit_error
from tinylogbert.errors import LogInputError, LogTooLargeError, OutputError
from tinylogbert.live.ingest import IngestConfig, LiveIngest, QueueFull, TooManyLines
from tinylogbert.live.shipper_payloads import DEFAULT_STREAM, parse_lines, parse_otlp

PROTOBUF = "application/x-protobuf"
# google.rpc.Code values OTLP uses in its error bodies.
RPC_INVALID_ARGUMENT, RPC_RESOURCE_EXHAUSTED, RPC_UNAVAILABLE = 3, 8, 14


@dataclass(frozen=True)
class LiveSettings:
    """``serve``'s live-ingestion options (``tinylogbert serve --help``)."""

    ingest: IngestConfig = IngestConfig()
    message_field: str = "auto"  # /v1/ingest: the JSON field holding the line
    stream_field: str | None = None  # /v1/ingest: the JSON field naming the source stream
    events_path: Path | None = None  # every event, one JSON object per line (appended)
    sinks: tuple = ()  # alert sinks (live.alert_sinks), delivered through the outbox
    state_dir: Path | None = None  # where the outbox lives
    # with state_dir: accepted lines go to a write-ahead log there before the answer, and the
    # open sessions are snapshotted (they stay open over a stop): ``serve --state``
    durable: bool = False


class _EventLog:
    """The live events as JSON lines in a file (appended, flushed per step)."""

    def __init__(self, path: Path | None) -> None:
        self.handle = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115

    def write(self, events: list[dict]) -> None:
        if self.handle is None:
            return
        from tinylogbert.api.rendering import json_safe

        for event in events:
            self.handle.write(json.dumps(json_safe(event)) + "\n")
        self.handle.flush()

    def sync(self) -> int | None:
        """Its size once on disk (a state snapshot records it)."""
        if self.handle is None:
            return None
        import os

        self.handle.flush()
        os.fsync(self.handle.fileno())
        return os.fstat(self.handle.fileno()).st_size

    def truncate(self, size: int) -> None:
        """Back to a snapshot's size: a restart writes what came after it again, identically."""
        if self.handle is not None:
            self.handle.flush()
            if self.handle.tell() > size:
                self.handle.truncate(size)
                self.handle.seek(size)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _body_bytes(request: Request, body: bytes, settings) -> bytes:
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise ApiError(415, "unsupported_encoding",
                       f"Content-Encoding {encoding!r}: send identity or gzip")
    from tinylogbert.io.log_reader import gunzip_bounded

    try:
        return gunzip_bounded(body, "the request body", settings.max_log_bytes)
    except LogTooLargeError:
        raise limit_error(settings, "max_log_bytes", 413, "log_too_large",
                          "the request body's gzip holds more") from None
    except LogInputError as exc:
        raise ApiError(400, "invalid_body", str(exc)) from None


def _otlp_status(code: int, message: str, as_protobuf: bool) -> tuple[bytes, str]:
    from google.rpc.status_pb2 import Status

    status = Status(code=code, message=message)
    if as_protobuf:
        return status.SerializeToString(), PROTOBUF
    from google.protobuf.json_format import MessageToJson

    return MessageToJson(status).encode(), "application/json"


def install_ingest(app: FastAPI, service, live: LiveSettings, metrics, dependencies: list,
                   on_events=None, on_warning=None, on_close=None) -> LiveIngest:
    """Add the routes; the worker starts with the first lines and stops with the app."""
    settings = service.settings
    events_log = _EventLog(live.events_path)

    def deliver(events: list[dict]) -> None:
        events_log.write(events)
        if on_events is not None:
            on_events(events)

    state = None
    if live.durable and live.state_dir is not None:
        from tinylogbert.live.state import IngestState

        try:
            state = IngestState(live.state_dir)
        except OSError as exc:
            raise OutputError(f"--state {live.state_dir}: {exc.strerror or exc}") from None
    ingest = LiveIngest(service.detector, live.ingest, deliver, metrics, on_warning,
                        prepare=lambda: setattr(service.detector, "feedback_",
                                                service.feedback.current()),
                        state=state, events_log=events_log)
    app.state.live_resumed = None
    if state is not None:
        try:  # (streams restored, batches replayed): ``serve`` says it
            app.state.live_resumed = ingest.recover()
        except (OSError, ValueError) as exc:
            raise OutputError(f"--state {live.state_dir}: {exc}") from None
    app.state.live_ingest = ingest

    async def offer(batches) -> None:
        if state is None:
            ingest.offer(batches)
        else:  # the write-ahead log's fsync stays off the event loop
            await anyio.to_thread.run_sync(ingest.offer, batches)
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a):
        async with previous(a) as state:
            try:
                yield state
            finally:  # SIGTERM: score what was queued, close every session, write its events
                await anyio.to_thread.run_sync(ingest.close)
                events_log.close()
                if on_close is not None:  # the alerts of the sessions closed just now
                    await anyio.to_thread.run_sync(on_close)

    app.router.lifespan_context = lifespan

    @app.post("/v1/logs", dependencies=dependencies, tags=["live ingestion"],
              response_class=Response,
              responses={200: {"description": "ExportLogsServiceResponse (protobuf or JSON, as "
                                              "the request)"},
                         400: {"description": "not an OTLP logs request"},
                         413: {"description": "the body or its lines are over the limits"},
                         415: {"description": "neither application/x-protobuf nor "
                                              "application/json (or an unknown encoding)"},
                         429: {"description": "the queue is full: retry after Retry-After s"},
                         503: {"description": "the server is stopping (or cannot write its "
                                              "--state log)"}})
    async def otlp_logs(request: Request) -> Response:
        """OTLP/HTTP logs, as the OpenTelemetry Collector's ``otlphttp`` exporter and the SDKs
        send them (``Content-Type: application/x-protobuf`` or ``application/json``, optionally
        gzip). One live session tracker per ``service.name``/``host.name``."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        as_json = media == "application/json"
        if not as_json and media != PROTOBUF:
            content, kind = _otlp_status(RPC_INVALID_ARGUMENT, f"Content-Type {media!r}: send "
                                         f"{PROTOBUF} or application/json", False)
            return Response(content, 415, media_type=kind)
        body = _body_bytes(request, await request.body(), settings)
        try:
            _, decoded = parse_otlp(body, as_json)
        except LogInputError as exc:
            content, kind = _otlp_status(RPC_INVALID_ARGUMENT, str(exc), not as_json)
            return Response(content, 400, media_type=kind)
        try:
            await offer(decoded.batches)
        except TooManyLines as exc:
            content, kind = _otlp_status(RPC_INVALID_ARGUMENT, str(exc), not as_json)
            return Response(content, 413, media_type=kind)
        except QueueFull as exc:
            if metrics is not None:
                metrics.rejected.labels("/v1/logs").inc()
            stopping = ingest.stopping or exc.unavailable
            code = RPC_UNAVAILABLE if stopping else RPC_RESOURCE_EXHAUSTED
            content, kind = _otlp_status(code, exc.reason, not as_json)
            return Response(content, 503 if stopping else 429, media_type=kind,
                            headers={"Retry-After": str(exc.retry_after)})
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsPartialSuccess,
            ExportLogsServiceResponse,
        )

        answer = ExportLogsServiceResponse()
        if decoded.rejected:
            answer.partial_success.CopyFrom(ExportLogsPartialSuccess(
                rejected_log_records=decoded.rejected, error_message=decoded.reason))
        if as_json:
            from google.protobuf.json_format import MessageToJson

            return Response(MessageToJson(answer), media_type="application/json")
        return Response(answer.SerializeToString(), media_type=PROTOBUF)

    @app.post("/v1/ingest", status_code=202, dependencies=dependencies, tags=["live ingestion"],
              responses={202: {"description": "queued: counts of lines accepted and rejected"},
                         400: {"description": "the JSON does not parse"},
                         413: {"description": "the body or its lines are over the limits"},
                         415: {"description": "an unknown Content-Encoding"},
                         429: {"description": "the queue is full: retry after Retry-After s"},
                         503: {"description": "the server is stopping (or cannot write its "
                                              "--state log)"}})
    async def ingest_lines(
        request: Request,
        source: Annotated[str, Query(max_length=200, description="the source stream (one "
                                     "session tracker each) when the records do not name one")
                          ] = DEFAULT_STREAM,
    ) -> JSONResponse:
        """Log lines as Fluent Bit's and Vector's ``http`` outputs send them: plain text (one line
        per line), NDJSON or a JSON array of objects, the line in the configured message field
        (``serve --message-field``), optionally gzip."""
        body = _body_bytes(request, await request.body(), settings)
        try:
            decoded = parse_lines(body, request.headers.get("content-type", ""),
                                  live.message_field, live.stream_field, source)
        except LogInputError as exc:
            raise ApiError(400, "invalid_body", str(exc)) from None
        try:
            await offer(decoded.batches)
        except TooManyLines as exc:
            raise ApiError(413, "too_many_lines", str(exc)) from None
        except QueueFull as exc:
            if metrics is not None:
                metrics.rejected.labels("/v1/ingest").inc()
            status = 503 if ingest.stopping or exc.unavailable else 429
            error = ("overloaded" if status == 429 else
                     "unavailable" if exc.unavailable else "stopping")
            raise ApiError(status, error, exc.reason,
                           headers={"Retry-After": str(exc.retry_after)}) from None
        answer = {"accepted": decoded.lines, "rejected": decoded.rejected,
                  "queued_lines": ingest.queued_lines}
        if decoded.rejected:
            answer["message"] = decoded.reason
        return JSONResponse(answer, 202)

    @app.post("/v1/ingest/flush", dependencies=dependencies, tags=["live ingestion"],
              responses={200: {"description": "the sessions closed and scored"},
                         503: {"description": "the server is stopping"}})
    async def flush_sessions(
        source: Annotated[str | None, Query(max_length=200, description="only this source "
                                            "stream's sessions (default: every stream's)")
                          ] = None,
    ) -> JSONResponse:
        """Close every open session now (of one stream with ``?source=``), after the lines
        already accepted, and score them: their events and alerts go out before the answer.
        For the end of a replay, or before a stop that should not leave sessions open for the
        restart (``serve --state`` keeps them open over a stop)."""
        try:
            closed = await anyio.to_thread.run_sync(ingest.flush, source)
        except QueueFull as exc:
            raise ApiError(503, "stopping" if ingest.stopping else "unavailable", exc.reason,
                           headers={"Retry-After": str(exc.retry_after)}) from None
        return JSONResponse({"closed_sessions": closed,
                             "open_sessions": sum(ingest.open_sessions().values())})

    return ingest


def install_live(app: FastAPI, service, live: LiveSettings, dependencies: list) -> LiveIngest:
    """``/metrics``, the ingestion routes and the alert sinks, wired together."""
    from tinylogbert.api.metrics import install_metrics
    from tinylogbert.live.metrics import LiveMetrics

    from tinylogbert.live.outbox import open_outbox

    warn = logging.getLogger("tinylogbert").warning
    metrics = LiveMetrics()
    app.state.metrics = metrics
    install_metrics(app, metrics, dependencies)
    outbox = open_outbox(list(live.sinks), live.state_dir, metrics, warn)
    app.state.outbox = outbox
    return install_ingest(app, service, live, metrics, dependencies,
                          on_events=outbox.add if outbox else None, on_warning=warn,
                          on_close=outbox.close if outbox else None)
