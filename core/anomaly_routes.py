"""The REST API: FastAPI routes over ``TinyLogBERTDetector`` (``create_app``).

Design, in short:

* The model is loaded once, when the app is built, so a bad checkpoint stops ``serve`` at start-up
  with a one-line error instead of failing the first request.
* Scoring is CPU-bound: it runs in a worker thread, at most ``max_concurrency`` requests at a time
  (the others wait, without blocking the event loop), so ``/v1/health`` answers while a large
  request is scored. JSON/CSV rendering happens in that thread too.
* Every error is JSON (``ErrorBody``) with a stable ``error`` code and a one-line ``message``; an
  error caused by a limit also names the limit (``limit``, ``limit_value``). Nothing a client sends
  may produce a 500.
* Responses stay bounded: every line and session gets a score, but only the
  ``max_explained_sessions`` highest-scoring anomalous sessions get their top lines explained.

Note: no ``from __future__ import annotations`` here; FastAPI reads the annotations of endpoints
defined inside ``create_app`` at run time, and the request model is built there from the limits.
"""
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import anyio
import anyio.to_thread
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fastapi import FastAPI, File, Form, Request, Security, UploadFile
from fastapi import Path as FastApiPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__, pipeline
from .api_docs import docs_page
from .api_settings import ApiSettings, env_name
from .errors import LogTooLargeError, TinyLogBERTError
from .log_reader import GZIP_MAGIC, LogLines, gunzip_bounded, read_log_bytes, read_log_lines
from .results import ScoreResult
from .sessions import SessionConfig

JSON_MEDIA = "application/json"
CSV_MEDIA = "text/csv"
# CSV responses carry the warnings (``tinylogbert.fit_check``) in this header, ' | '-joined.
WARNINGS_HEADER = "X-TinyLogBERT-Warnings"
# Overlapping windows multiply the work: each line is scored once per window that holds it.
MAX_WINDOW_OVERLAP = 16
# Rows rendered per JSON piece: ~10 ms of work, after which the event loop may run.
ROWS_PER_CHUNK = 2000
T = TypeVar("T")


# ---- errors -------------------------------------------------------------------------------------
class ErrorBody(BaseModel):
    """Every error response. ``limit``/``limit_value`` are set when a configured limit was hit."""

    error: str = Field(description="stable machine-readable code, e.g. 'too_many_lines'")
    message: str = Field(description="one line for a human")
    limit: str | None = Field(None, description="the setting that was exceeded, e.g. 'max_lines'")
    limit_value: int | None = Field(None, description="that setting's value on this server")
    errors: list[dict[str, Any]] | None = Field(
        None, description="for invalid requests: each field's problem (loc, msg, type)"
    )


class ApiError(StarletteHTTPException):
    """An HTTP error rendered as ``ErrorBody``."""

    def __init__(self, status_code: int, error: str, message: str, *, limit: str | None = None,
                 limit_value: int | None = None, errors: list[dict] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.body = ErrorBody(error=error, message=message, limit=limit, limit_value=limit_value,
                              errors=errors)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body.model_dump(exclude_none=True), self.status_code, self.headers)


def limit_error(settings: ApiSettings, limit: str, status_code: int, error: str, what: str) -> ApiError:
    """An error that names the limit, its value and how to raise it."""
    value = getattr(settings, limit)
    return ApiError(
        status_code, error,
        f"{what}; this server's limit is {value:,} ({limit}, env {env_name(limit)})",
        limit=limit, limit_value=value,
    )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "malformed request (e.g. invalid JSON)"},
    413: {"model": ErrorBody, "description": "a size limit was exceeded (body, lines, log size)"},
    422: {"model": ErrorBody, "description": "invalid fields, an unusable log, or a line too long"},
}


# ---- request body size --------------------------------------------------------------------------
class BodySizeLimit:
    """Reject a request body over ``max_body_bytes`` before it is read into memory.

    A declared ``Content-Length`` over the limit is refused at once; a body without one (chunked)
    is counted as it streams and refused at the first byte over. Hand-written rather than
    Starlette's ``RequestBodyLimitMiddleware`` so the 413 is the API's JSON error naming the limit.
    """

    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app = app
        self.settings = settings

    def _error(self, what: str) -> ApiError:
        return limit_error(self.settings, "max_body_bytes", 413, "body_too_large", what)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.settings.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            error = self._error(f"the request body is {int(declared):,} bytes")
            await error.response()(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the app's body read: FastAPI re-raises HTTP exceptions,
                    # and the ApiError handler renders it.
                    raise self._error(f"the request body is over {limit:,} bytes")
            return message

        await self.app(scope, counting_receive, send)


# ---- request models -----------------------------------------------------------------------------
class SessionOptions(BaseModel):
    """How lines become sessions (``tinylogbert.sessions.SessionConfig``); zeros mean the format's default."""

    model_config = ConfigDict(extra="forbid")

    by: Literal["auto", "id", "window", "time"] = Field(
        "auto", description="auto: an id in the line if the format has one, else windows of lines"
    )
    id_pattern: str | None = Field(None, max_length=500, description="regex whose matches are session ids")
    window_size: int = Field(0, ge=0, le=100_000, description="lines per window")
    window_step: int = Field(0, ge=0, le=100_000, description="lines between window starts (0: window_size)")
    time_window: float = Field(0.0, ge=0, le=1e9, allow_inf_nan=False,
                               description="seconds per window (0: the format's default)")
    time_step: float = Field(0.0, ge=0, le=1e9, allow_inf_nan=False,
                             description="seconds between window starts (0: time_window)")

    @model_validator(mode="after")
    def _bounded_overlap(self) -> "SessionOptions":
        if self.window_step:
            if not self.window_size:
                raise ValueError("window_step needs window_size")
            if self.window_step > self.window_size:
                raise ValueError("window_step must not exceed window_size (lines would be skipped)")
            if -(-self.window_size // self.window_step) > MAX_WINDOW_OVERLAP:
                raise ValueError(f"windows may overlap at most {MAX_WINDOW_OVERLAP} times")
        if self.time_step and not self.time_window:
            raise ValueError("time_step needs time_window")
        if self.time_step and self.time_window / self.time_step > MAX_WINDOW_OVERLAP:
            raise ValueError(f"time windows may overlap at most {MAX_WINDOW_OVERLAP} times")
        return self

    def config(self) -> SessionConfig:
        return SessionConfig(**self.model_dump())


FORMAT_HELP = ("'auto' (detect), a format name, a template like "
               "'<Date> <Time> <Level>: <Content>', or a regex with named groups")


class ScoreOptions(BaseModel):
    """Options shared by ``/v1/score`` (JSON fields) and ``/v1/score/file`` (form fields)."""

    model_config = ConfigDict(extra="forbid")

    format: str = Field("auto", min_length=1, max_length=2000, description=FORMAT_HELP)
    threshold: float | None = Field(
        None, allow_inf_nan=False, description="session threshold; default: the model's"
    )
    sessions: SessionOptions | None = Field(None, description="default: the model's session rule")
    top_lines: int = Field(
        3, ge=0, le=10, description="explained lines per anomalous session (0: no explanations)"
    )


EXAMPLE_LINES = [
    ("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 "
     "for block blk_38865049064139660 terminating"),
    ("081109 203807 222 INFO dfs.DataNode$PacketResponder: Received block "
     "blk_-6952295868487656571 of size 67108864 from /10.251.73.220"),
]


def score_request_model(settings: ApiSettings) -> type[ScoreOptions]:
    """The ``/v1/score`` body, with this server's limits in its schema (so ``/docs`` shows them)."""
    line = Annotated[str, StringConstraints(max_length=settings.max_line_length)]

    class ScoreRequest(ScoreOptions):
        lines: list[line] = Field(
            min_length=1, max_length=settings.max_lines,
            description="log lines, one per item, in order (line_no = index + 1)",
        )
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={"examples": [{"lines": EXAMPLE_LINES, "format": "auto"}]},
        )

    return ScoreRequest


def feedback_request_model(settings: ApiSettings) -> type[BaseModel]:
    """The ``/v1/feedback`` body: the log's lines (as ``/v1/score`` takes them) and the ids of
    the sessions in it to mark as normal."""
    line = Annotated[str, StringConstraints(max_length=settings.max_line_length)]
    session_id = Annotated[str, StringConstraints(min_length=1, max_length=1000)]

    class FeedbackRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        lines: list[line] = Field(
            min_length=1, max_length=settings.max_lines,
            description="the log lines the sessions are in, as sent to /v1/score")
        normal: list[session_id] = Field(
            min_length=1, max_length=1000,
            description="ids of the sessions to mark as normal (false alarms)")
        match: Literal["sequence", "set"] = Field(
            "sequence", description="sessions like a marked one: the same sequence of "
                                    "normalised lines, or the same set of them")
        format: str = Field("auto", min_length=1, max_length=2000, description=FORMAT_HELP)
        sessions: SessionOptions | None = Field(None, description="default: the model's rule")

    return FeedbackRequest


class FeedbackEntryBody(BaseModel):
    id: str
    created: str
    session_id: str
    source: str
    match: str
    lines: list[str] = Field(description="the normalised lines the entry matches")


class FeedbackResponse(BaseModel):
    marked: dict[str, str] = Field(description="per session id given: its feedback entry's id")
    entries: list[FeedbackEntryBody] = Field(description="every entry the model now has")


# ---- response models (documentation; the JSON itself is rendered in the worker thread) -----------
class LineResult(BaseModel):
    line_no: int
    session_id: str = Field(description="the line's session(s), ';'-joined when several")
    score: float | None = Field(description="surprisal of the line in its session (nats)")
    is_anomaly: bool = Field(description="score >= the model's line threshold")
    severity: str = Field(description="grade of the line's session: normal, elevated, high or "
                                      "critical")
    session_score: float | None
    session_is_anomaly: bool
    parse_ok: bool = Field(description="false when the line did not fit the format (still scored)")
    suppressed_by: str = Field(description="the feedback entry that suppressed the line's "
                                           "highest-scoring session; '' when none")


class TopLine(BaseModel):
    line_no: int
    message: str
    score: float = Field(description="the line's score in the session (ranks the top lines)")
    surprisal: float = Field(description="-log p(line | the lines before it), in nats")
    probability: float = Field(description="p(line | the lines before it)")
    expected: str = Field(description="the line the model found most likely there")
    expected_probability: float
    unexpected_words: list[str]


class SessionResult(BaseModel):
    session_id: str
    n_lines: int
    first_line_no: int
    score: float | None
    is_anomaly: bool
    severity: str = Field(description="the session's grade (kept under its first name)")
    grade: str = Field(description="argmax of the grade probabilities: normal, elevated, high "
                                   "(flagged) or critical (flagged, far above the threshold)")
    p_normal: float
    p_elevated: float
    p_high: float
    p_critical: float
    top_line_no: int = Field(description="the session's top line (highest line score)")
    suppressed_by: str = Field(description="the feedback entry (POST /v1/feedback) that keeps "
                                           "this session from being flagged; '' when none")
    top_lines: list[TopLine] | None = Field(
        description="highest line score first; null unless the session is among the "
                    "explained_sessions highest-scoring anomalous ones"
    )


SESSION_COLUMNS = [name for name in SessionResult.model_fields if name != "top_lines"]
LINE_COLUMNS = list(LineResult.model_fields)


class ScoreSummary(BaseModel):
    lines: int
    sessions: int
    anomalous_sessions: int
    anomalous_lines: int
    unparsed_lines: int
    suppressed_sessions: int = Field(description="sessions that feedback keeps unflagged")


class ScoreResponse(BaseModel):
    source: str
    threshold: float = Field(description="the session threshold used")
    line_threshold: float
    format: str = Field(description="the format used and how it was detected")
    sessions_by: str
    summary: ScoreSummary
    explained_sessions: int = Field(description="how many sessions carry top_lines")
    warnings: list[str] = Field(
        description="read these before the scores: e.g. the model does not fit this log (another "
                    "format, most lines unknown to it) or invalid UTF-8 was replaced; empty when "
                    f"all is well. CSV responses carry them in the {WARNINGS_HEADER} header")
    sessions: list[SessionResult]
    lines: list[LineResult] = Field(description="one per input line, in order")


class HealthResponse(BaseModel):
    status: Literal["ok"]
    model_loaded: bool
    version: str
    scoring: int = Field(description="requests being scored now")
    waiting: int = Field(description="requests waiting for a scoring slot")


class ModelResponse(BaseModel):
    version: str
    threshold: float | None
    line_threshold: float | None
    format: str
    vocab_size: int
    line_classes: int
    parameters: int
    model: dict[str, Any]
    training_summary: dict[str, Any]
    limits: dict[str, int] = Field(description="this server's request limits")
    max_concurrency: int = Field(description="requests scored at the same time")
    torch_threads: int = Field(description="torch threads used by scoring")


# ---- scoring (runs in worker threads) -----------------------------------------------------------
@dataclass(frozen=True)
class ScoreJob:
    """One request's scoring options, validated and converted for ``core``."""

    log_format: str
    threshold: float | None
    sessions: SessionConfig | None
    top_lines: int

    @classmethod
    def from_options(cls, options: ScoreOptions) -> "ScoreJob":
        sessions = options.sessions.config() if options.sessions else None
        return cls(options.format, options.threshold, sessions, options.top_lines)


class ScoringService:
    """Owns the detector (loaded once) and runs scoring off the event loop, a few at a time."""

    def __init__(self, detector, settings: ApiSettings) -> None:
        self.detector = detector
        self.settings = settings
        self.model_info = _json_safe(detector.info())
        self.scoring = 0
        self.waiting = 0

    @cached_property
    def _slots(self) -> anyio.CapacityLimiter:
        # Made on first use, inside the server's event loop (older anyio needs a running loop).
        return anyio.CapacityLimiter(self.settings.max_concurrency)

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(*args)`` in a thread once a scoring slot is free."""
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.scoring += 1
        try:
            return await anyio.to_thread.run_sync(work, *args)
        finally:
            self.scoring -= 1
            self._slots.release()

    # The methods below run in a worker thread.
    def score_lines(self, lines: list[str], job: ScoreJob) -> bytes:
        log = read_log_lines(lines, source="request")
        result, warnings = self._score(log, job)
        return self._render_json(result, job, "request", warnings)

    def score_upload(self, data: bytes, filename: str, job: ScoreJob,
                     as_csv: bool) -> tuple[bytes, list[str]]:
        log = self._read_upload(data, filename)
        result, warnings = self._score(log, job)
        if as_csv:
            return result.lines_csv_bytes(), warnings
        return self._render_json(result, job, filename, warnings), warnings

    def _score(self, log: LogLines, job: ScoreJob) -> tuple[ScoreResult, list[str]]:
        """The result and the warnings a client must see with it (``tinylogbert.fit_check``): invalid
        UTF-8 that was replaced, a model that does not fit the log."""
        # Responses carry no embeddings: skip the pass that makes them (half the work).
        options = pipeline.ScoreOptions(job.log_format, job.sessions, job.threshold,
                                        embeddings=False)
        scored = pipeline.run(self.detector, log, options)
        return scored.result, scored.warnings

    def mark_normal(self, body: Any) -> bytes:
        """Record feedback in the model folder, and use it from the next request on."""
        from .feedback import mark_normal

        sessions = body.sessions.config() if body.sessions else None
        feedback, entries = mark_normal(
            self.settings.model_dir, read_log_lines(body.lines, source="request"), body.normal,
            source="request", log_format=body.format, sessions=sessions, match=body.match)
        self.detector.feedback_ = feedback  # one attribute swap: requests see old or new
        return _dumps({"marked": {sid: e.id for sid, e in zip(body.normal, entries)},
                       "entries": [e.to_dict() for e in feedback.entries]})

    def remove_feedback(self, entry_id: str) -> bytes:
        from .feedback import remove_entry

        feedback = remove_entry(self.settings.model_dir, entry_id)
        self.detector.feedback_ = feedback
        return _dumps({"marked": {}, "entries": [e.to_dict() for e in feedback.entries]})

    def _read_upload(self, data: bytes, filename: str) -> LogLines:
        settings = self.settings
        if data.startswith(GZIP_MAGIC):
            try:  # the reading layer's decompressor: linear time, bounded by max_log_bytes
                data = gunzip_bounded(data, filename, settings.max_log_bytes)
            except LogTooLargeError as exc:
                raise limit_error(settings, "max_log_bytes", 413, "log_too_large", str(exc)) from None
        elif len(data) > settings.max_log_bytes:
            raise limit_error(settings, "max_log_bytes", 413, "log_too_large",
                              f"{filename} is {len(data):,} bytes")
        log = read_log_bytes(data, filename)
        if len(log) > settings.max_lines:
            raise limit_error(settings, "max_lines", 413, "too_many_lines",
                              f"{filename} has {len(log):,} lines")
        lengths = pc.utf8_length(log.lines).to_numpy(zero_copy_only=False)
        too_long = np.flatnonzero(lengths > settings.max_line_length)
        if len(too_long):
            first = int(too_long[0])
            raise limit_error(settings, "max_line_length", 422, "line_too_long",
                              f"line {first + 1} of {filename} has {int(lengths[first]):,} characters")
        return log

    def _render_json(self, result: ScoreResult, job: ScoreJob, source: str,
                     warnings: list[str]) -> bytes:
        explained = explained_sessions(result, self.settings.max_explained_sessions, job.top_lines)
        summary = result.summary()
        head = {
            "source": source,
            "threshold": result.threshold,
            "line_threshold": result.line_threshold,
            "format": result.format_description,
            "sessions_by": result.session_strategy,
            "summary": {k: summary[k] for k in ScoreSummary.model_fields},
            "explained_sessions": len(explained),
            "warnings": warnings,
        }
        top_lines = [{"top_lines": explained.get(i)} for i in range(result.n_sessions)]
        return b"".join([
            _dumps(head)[:-1], b',"sessions":',
            *_json_rows(result.session_table, SESSION_COLUMNS, top_lines),
            b',"lines":', *_json_rows(result.line_table, LINE_COLUMNS), b"}",
        ])


def explained_sessions(result: ScoreResult, max_sessions: int, k: int) -> dict[int, list[dict]]:
    """Top-``k`` lines of the highest-scoring anomalous sessions, keyed by session index."""
    if k <= 0:
        return {}
    flagged = np.flatnonzero(result.session_table["is_anomaly"].to_numpy(zero_copy_only=False))
    scores = result.session_scores[flagged]
    chosen = flagged[np.argsort(-scores, kind="stable")[:max_sessions]]
    # vars(), not asdict(): asdict deep-copies every field and was a tenth of a request's time.
    return {int(i): _json_safe([vars(r) for r in result.explain(int(i), k=k).lines])
            for i in chosen}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def _json_rows(table: pa.Table, columns: list[str], extra: list[dict] | None = None,
               chunk: int = ROWS_PER_CHUNK) -> list[bytes]:
    """``table``'s rows as a JSON array, in pieces: many short conversions instead of one long
    one, so this worker thread gives the GIL back often and the event loop stays responsive."""
    pieces = [b"["]
    for start in range(0, table.num_rows, chunk):
        rows = _rows(table.slice(start, chunk), columns)
        if extra is not None:
            for row, more in zip(rows, extra[start:start + chunk]):
                row.update(more)
        pieces.append((b"," if start else b"") + _dumps(rows)[1:-1])
    pieces.append(b"]")
    return pieces


def _rows(table: pa.Table, columns: list[str]) -> list[dict]:
    """Rows of ``table`` as dicts, with non-finite floats as null (JSON has no NaN)."""
    table = table.select(columns)
    for i, column in enumerate(table.columns):
        if pa.types.is_floating(column.type):
            finite = pc.if_else(pc.is_finite(column), column, pa.scalar(None, column.type))
            table = table.set_column(i, table.field(i), finite)
    return table.to_pylist()


def _json_safe(value: Any) -> Any:
    """Replace NaN/inf (anywhere in nested dicts/lists) with None; numpy scalars become Python."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# ---- content negotiation ------------------------------------------------------------------------
def prefers_csv(accept: str | None) -> bool:
    """True when ``Accept`` ranks ``text/csv`` above ``application/json`` (q-value, then how
    specifically it was named); JSON otherwise, including when Accept is absent or ``*/*``."""
    return _preference(accept, CSV_MEDIA) > _preference(accept, JSON_MEDIA)


def _preference(accept: str | None, media: str) -> tuple[float, int]:
    kind = media.split("/")[0]
    best = (0.0, -1)
    for item in (accept or "").split(","):
        name, *params = [part.strip().lower() for part in item.split(";")]
        specificity = {media: 2, f"{kind}/*": 1, "*/*": 0}.get(name)
        if specificity is None or specificity < best[1]:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        best = (quality, specificity)
    return best if best[0] > 0 else (0.0, -1)


# ---- API key ------------------------------------------------------------------------------------
OPEN_PATHS = frozenset({"/v1/health"})  # liveness probes carry no key


def _key_offered(key: str | None, bearer: str | None) -> list[str]:
    return [k for k in (key, bearer) if k]


def _check_key(offered: list[str], expected: bytes) -> None:
    """Accept when any offered key equals ``expected`` (constant time); else a 401 ``ApiError``."""
    if any(hmac.compare_digest(k.encode(), expected) for k in offered):
        return
    message = ("the API key is wrong" if offered else
               "this server needs an API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")
    raise ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


class ApiKeyGate:
    """With an API key set, refuse every request without it before anything reads its body.

    FastAPI resolves a route's dependencies only after it has read and parsed the body, so an
    unauthenticated client could make the server parse 32 MiB of JSON (and learn from a 400 that
    the route exists). This outermost middleware looks at the headers only; ``/docs``,
    ``/redoc`` and ``/openapi.json`` are guarded too, only ``/v1/health`` is open.
    """

    def __init__(self, app: ASGIApp, expected: str) -> None:
        self.app = app
        self.expected = expected.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v.decode("latin-1") for k, v in scope["headers"]}
        scheme, _, token = headers.get(b"authorization", "").partition(" ")
        bearer = token.strip() if scheme.lower() == "bearer" else None
        try:
            _check_key(_key_offered(headers.get(b"x-api-key"), bearer), self.expected)
        except ApiError as exc:
            await exc.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)


def api_key_dependency(expected: str) -> Callable:
    """A dependency accepting ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``, compared in
    constant time (``hmac.compare_digest``) so response timing does not leak the key."""
    expected_bytes = expected.encode()
    bearer = HTTPBearer(auto_error=False, description="the server's TINYLOGBERT_API_KEY")
    header = APIKeyHeader(name="X-API-Key", auto_error=False,
                          description="the server's TINYLOGBERT_API_KEY")

    async def require_api_key(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
        key: Annotated[str | None, Security(header)],
    ) -> None:
        # Also checked by ApiKeyGate before the body is read; declared here for the schema.
        _check_key(_key_offered(key, credentials.credentials if credentials else None),
                   expected_bytes)

    return require_api_key


# ---- error handlers -----------------------------------------------------------------------------
def validation_error(errors: list[dict], settings: ApiSettings) -> ApiError:
    """Turn pydantic's errors into one clear message; size limits get their own codes."""
    for err in errors:
        loc, kind = tuple(err.get("loc", ())), err.get("type")
        if kind == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "invalid JSON")
            where = f" at position {loc[-1]}" if len(loc) > 1 else ""
            return ApiError(400, "malformed_json", f"the body is not valid JSON ({reason}{where})")
        if loc == ("body", "lines") and kind == "too_long":
            count = (err.get("ctx") or {}).get("actual_length")
            what = f"the request has {count:,} lines" if count else "the request has too many lines"
            return limit_error(settings, "max_lines", 413, "too_many_lines", what)
        if loc[:2] == ("body", "lines") and len(loc) == 3 and kind == "string_too_long":
            length = len(err.get("input") or "")
            return limit_error(settings, "max_line_length", 422, "line_too_long",
                               f"line {int(loc[2]) + 1} has {length:,} characters")
        if loc == ("body",) and kind in ("missing", "model_attributes_type", "dict_type"):
            return ApiError(422, "invalid_request",
                            "send a JSON object like {\"lines\": [...]} with "
                            "'Content-Type: application/json'")
    details = [{"loc": list(e.get("loc", ())), "msg": _message(e), "type": e.get("type", "")}
               for e in errors]
    message = "; ".join(f"{_field(d['loc'])}: {d['msg']}" for d in details[:3])
    if len(details) > 3:
        message += f" (and {len(details) - 3} more)"
    return ApiError(422, "invalid_request", message, errors=details[:20])


def _message(error: dict) -> str:
    return str(error.get("msg", "")).removeprefix("Value error, ")


def _field(loc: list) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "header", "form")]
    return ".".join(parts) or "body"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def install_error_handlers(app: FastAPI, settings: ApiSettings) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = ApiError(exc.status_code, f"http_{exc.status_code}", str(exc.detail), headers=exc.headers)
        return error.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(list(exc.errors()), settings).response()

    @app.exception_handler(TinyLogBERTError)
    async def _core_error(_: Request, exc: TinyLogBERTError) -> JSONResponse:
        return ApiError(422, _snake(type(exc).__name__), str(exc)).response()

    @app.exception_handler(UnicodeError)
    async def _bad_text(_: Request, exc: UnicodeError) -> JSONResponse:
        return ApiError(422, "invalid_text",
                        "the request holds text that is not valid Unicode (e.g. a lone "
                        f"surrogate escape like \\ud800): {getattr(exc, 'reason', exc)}").response()

    @app.exception_handler(MemoryError)
    async def _out_of_memory(_: Request, exc: MemoryError) -> JSONResponse:
        return ApiError(413, "out_of_memory",
                        "scoring this request ran out of memory; send fewer lines").response()

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:  # logged by the server too
        return ApiError(500, "internal_error",
                        f"internal error ({type(exc).__name__}); see the server log").response()


# ---- the app ------------------------------------------------------------------------------------
def warnings_header(warnings: list[str]) -> str:
    """The warnings as one header value: ASCII, one line, ' | '-joined."""
    text = " | ".join(" ".join(w.split()) for w in warnings)
    return text.encode("ascii", "replace").decode("ascii")


def _csv_filename(upload_name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(upload_name).name)
    stem = re.sub(r"(\.gz)?$", "", stem, flags=re.IGNORECASE).rsplit(".", 1)[0] or "log"
    return f"{stem}.scored.csv"


def create_app(model_dir: str | Path | None = None, settings: ApiSettings | None = None) -> FastAPI:
    """Build the API around the model in ``model_dir`` (default: ``settings.model_dir``).

    ``settings`` default to ``ApiSettings.from_env()`` (``TINYLOGBERT_*`` variables)."""
    from .detector import TinyLogBERTDetector  # torch: imported only when an app is built

    settings = settings or ApiSettings.from_env()
    if model_dir is not None:
        settings = settings.with_overrides(model_dir=Path(model_dir))
    detector = TinyLogBERTDetector.load(settings.model_dir, runtime="auto")  # as the CLI
    detector.num_threads = settings.scoring_threads()  # torch's setting is process-wide
    service = ScoringService(detector, settings)
    secured = [Security(api_key_dependency(settings.api_key))] if settings.api_key else []

    app = FastAPI(
        title="TinyLogBERT",
        version=__version__,
        description="Unsupervised log anomaly detection: score log lines and sessions with a "
                    "tiny BERT. Every error is JSON with an `error` code and a `message`.",
        docs_url=None, redoc_url=None,  # served below, self-contained (no CDN)
    )
    app.state.service = service
    app.state.settings = settings
    app.add_middleware(BodySizeLimit, settings=settings)
    if settings.api_key:  # added last: outermost, so it runs before the body is read
        app.add_middleware(ApiKeyGate, expected=settings.api_key)
    install_error_handlers(app, settings)
    ScoreRequest = score_request_model(settings)
    auth_responses = {401: {"model": ErrorBody, "description": "missing or wrong API key"}} if secured else {}

    @app.get("/v1/health", response_model=HealthResponse, tags=["service"])
    async def health() -> HealthResponse:
        """Liveness: answers even while requests are being scored. Never needs the API key."""
        return HealthResponse(status="ok", model_loaded=True, version=__version__,
                              scoring=service.scoring, waiting=service.waiting)

    @app.get("/docs", include_in_schema=False)
    @app.get("/redoc", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """The API's documentation, rendered here: loads nothing from another host."""
        return HTMLResponse(docs_page(app.openapi()))

    @app.get("/v1/model", response_model=ModelResponse, dependencies=secured,
             responses=auth_responses, tags=["service"])
    async def model() -> JSONResponse:
        """The loaded model: version, thresholds, training summary, vocabulary, parameters."""
        return JSONResponse({**service.model_info, "limits": settings.limits(),
                             "max_concurrency": settings.max_concurrency,
                             "torch_threads": settings.scoring_threads()})

    @app.post("/v1/score", response_model=ScoreResponse, dependencies=secured,
              responses={**ERROR_RESPONSES, **auth_responses}, tags=["scoring"])
    async def score(body: ScoreRequest) -> Response:  # type: ignore[valid-type]
        """Score log lines: a result per line, per session (top lines of the most anomalous
        ones), and the threshold used."""
        job = ScoreJob.from_options(body)
        content = await service.run(service.score_lines, body.lines, job)
        return Response(content, media_type=JSON_MEDIA)

    @app.post(
        "/v1/score/file", response_model=ScoreResponse, dependencies=secured, tags=["scoring"],
        responses={
            200: {"content": {CSV_MEDIA: {"schema": {"type": "string"}}},
                  "description": "JSON, or with 'Accept: text/csv' the CSV the CLI writes"},
            **ERROR_RESPONSES, **auth_responses,
        },
    )
    async def score_file(
        request: Request,
        file: Annotated[UploadFile, File(description="a .log / .txt file, or gzip of one")],
        format: Annotated[str, Form(max_length=2000, description=FORMAT_HELP)] = "auto",
        threshold: Annotated[float | None, Form(allow_inf_nan=False,
                                                description="session threshold")] = None,
        top_lines: Annotated[int, Form(ge=0, le=10)] = 3,
        sessions_by: Annotated[Literal["auto", "id", "window", "time"] | None, Form()] = None,
        session_id_pattern: Annotated[str | None, Form(max_length=500)] = None,
        window_size: Annotated[int | None, Form(ge=0, le=100_000)] = None,
        window_step: Annotated[int | None, Form(ge=0, le=100_000)] = None,
        time_window: Annotated[float | None, Form(ge=0, le=1e9, allow_inf_nan=False)] = None,
        time_step: Annotated[float | None, Form(ge=0, le=1e9, allow_inf_nan=False)] = None,
    ) -> Response:
        """Score an uploaded log. Send 'Accept: text/csv' for the CLI's LINES.csv instead of JSON.
        The session fields are those of ``SessionOptions`` (``sessions_by`` is its ``by``)."""
        given = {
            "by": sessions_by, "id_pattern": session_id_pattern, "window_size": window_size,
            "window_step": window_step, "time_window": time_window, "time_step": time_step,
        }
        given = {k: v for k, v in given.items() if v is not None}
        try:
            sessions = SessionOptions(**given) if given else None
            options = ScoreOptions(format=format, threshold=threshold, top_lines=top_lines,
                                   sessions=sessions)
        except ValidationError as exc:  # same message as the JSON endpoint gives
            where = ("body",) if exc.title == ScoreOptions.__name__ else ("body", "sessions")
            raise RequestValidationError(
                [{**e, "loc": (*where, *e["loc"])} for e in exc.errors()]
            ) from None
        job = ScoreJob.from_options(options)
        data = await file.read()
        name = Path(file.filename or "upload.log").name
        as_csv = prefers_csv(request.headers.get("accept"))
        content, warnings = await service.run(service.score_upload, data, name, job, as_csv)
        if as_csv:
            headers = {"Content-Disposition": f'attachment; filename="{_csv_filename(name)}"'}
            if warnings:
                headers[WARNINGS_HEADER] = warnings_header(warnings)
            return Response(content, media_type=f"{CSV_MEDIA}; charset=utf-8", headers=headers)
        return Response(content, media_type=JSON_MEDIA)

    FeedbackRequest = feedback_request_model(settings)

    @app.post("/v1/feedback", response_model=FeedbackResponse, dependencies=secured,
              responses={**ERROR_RESPONSES, **auth_responses}, tags=["feedback"])
    async def feedback(body: FeedbackRequest) -> Response:  # type: ignore[valid-type]
        """Mark sessions of a log as normal (false alarms): stored with the model
        (``feedback.json``, covered by its manifest) and applied from the next request on. The
        marked sessions and sessions like them are no longer flagged; ``suppressed_by`` names
        the entry. An unknown session id is a 422 (``feedback_error``)."""
        content = await service.run(service.mark_normal, body)
        return Response(content, media_type=JSON_MEDIA)

    @app.get("/v1/feedback", response_model=FeedbackResponse, dependencies=secured,
             responses=auth_responses, tags=["feedback"])
    async def feedback_list() -> JSONResponse:
        """The model's feedback entries."""
        entries = getattr(service.detector, "feedback_", None)
        entries = entries.entries if entries else ()
        return JSONResponse({"marked": {}, "entries": [e.to_dict() for e in entries]})

    @app.delete("/v1/feedback/{entry_id}", response_model=FeedbackResponse, dependencies=secured,
                responses={**ERROR_RESPONSES, **auth_responses}, tags=["feedback"])
    async def feedback_remove(entry_id: Annotated[str, FastApiPath(max_length=100)]) -> Response:
        """Remove a feedback entry (422 ``feedback_error`` when there is none)."""
        content = await service.run(service.remove_feedback, entry_id)
        return Response(content, media_type=JSON_MEDIA)

    return app
