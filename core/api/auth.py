"""The optional API key: an ASGI gate and the OpenAPI security scheme, compared in constant time."""
import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send
from tinylogbert.api.errors import ApiError

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


