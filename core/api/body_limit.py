"""Request bodies are bounded while they arrive (ASGI middleware), before anything reads them."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tinylogbert.api.errors import ApiError, limit_error
from tinylogbert.api.settings import ApiSettings


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


