"""The API's one error shape: every failure is JSON (``ErrorBody``) with a stable ``error`` code
and a one-line ``message``; an error caused by a limit names the limit. Nothing a client sends
may produce a 500 with a traceback.
"""
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    Field,
)
from starlette.exceptions import HTTPException as StarletteHTTPException
from tinylogbert.api.settings import ApiSettings, env_name
from tinylogbert.errors import TinyLogBERTError
from tinylogbert.io.atomic_output import OutputWriteError


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
# Routes that write to the model folder (feedback) can also fail on the server's disk.
WRITE_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    507: {"model": ErrorBody, "description": "the server could not write the model folder "
                                             "(disk full, read-only, quota): code write_error"},
}


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

    @app.exception_handler(OutputWriteError)
    async def _write_error(_: Request, exc: OutputWriteError) -> JSONResponse:
        # The server's disk, not the request: 507 (retrying once space is freed can succeed).
        return ApiError(507, "write_error", str(exc)).response()

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


