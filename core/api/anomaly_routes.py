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
import re
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, File, Form, Request, Security, UploadFile
from fastapi import Path as FastApiPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError
from tinylogbert import __version__
from tinylogbert.api.auth import ApiKeyGate, api_key_dependency
from tinylogbert.api.body_limit import BodySizeLimit
from tinylogbert.api.docs import docs_page
from tinylogbert.api.errors import (
    ERROR_RESPONSES,
    WRITE_ERROR_RESPONSES,
    ErrorBody,
    install_error_handlers,
)
from tinylogbert.api.ingest_routes import LiveSettings, install_live
from tinylogbert.api.negotiation import CSV_MEDIA, JSON_MEDIA, WARNINGS_HEADER, prefers_csv
from tinylogbert.api.schemas import (
    FORMAT_HELP,
    FeedbackResponse,
    HealthResponse,
    ModelResponse,
    ScoreOptions,
    ScoreResponse,
    SessionOptions,
    feedback_request_model,
    score_request_model,
)
from tinylogbert.api.service import ScoreJob, ScoringService
from tinylogbert.api.settings import ApiSettings


def warnings_header(warnings: list[str]) -> str:
    """The warnings as one header value: ASCII, one line, ' | '-joined."""
    text = " | ".join(" ".join(w.split()) for w in warnings)
    return text.encode("ascii", "replace").decode("ascii")


def _csv_filename(upload_name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(upload_name).name)
    stem = re.sub(r"(\.gz)?$", "", stem, flags=re.IGNORECASE).rsplit(".", 1)[0] or "log"
    return f"{stem}.scored.csv"


def create_app(model_dir: str | Path | None = None, settings: ApiSettings | None = None,
               live: "LiveSettings | None" = None) -> FastAPI:
    """Build the API around the model in ``model_dir`` (default: ``settings.model_dir``).

    ``settings`` default to ``ApiSettings.from_env()`` (``TINYLOGBERT_*`` variables); ``live``:
    the live ingestion's options (``api.ingest_routes``)."""
    from tinylogbert.scoring.detector import (
        TinyLogBERTDetector,  # torch: imported only when an app is built
    )

    settings = settings or ApiSettings.from_env()
    if model_dir is not None:
        settings = settings.with_overrides(model_dir=Path(model_dir))
    # As the CLI (onnx when it can), or the int8 graph when asked (``model/onnx_int8.py``).
    detector = TinyLogBERTDetector.load(settings.model_dir,
                                        runtime="onnx-int8" if settings.int8 else "auto")
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
    auth_responses = ({401: {"model": ErrorBody, "description": "missing or wrong API key"}}
                      if secured else {})

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
              responses={**ERROR_RESPONSES, **WRITE_ERROR_RESPONSES, **auth_responses},
              tags=["feedback"])
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
                responses={**ERROR_RESPONSES, **WRITE_ERROR_RESPONSES, **auth_responses},
                tags=["feedback"])
    async def feedback_remove(entry_id: Annotated[str, FastApiPath(max_length=100)]) -> Response:
        """Remove a feedback entry (422 ``feedback_error`` when there is none)."""
        content = await service.run(service.remove_feedback, entry_id)
        return Response(content, media_type=JSON_MEDIA)

    install_live(app, service, live or LiveSettings(), secured)
    return app
