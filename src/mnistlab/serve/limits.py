"""What the server refuses or adds on every request: bodies over the limit (413), the
security headers of every response, and HEAD answered as GET; and the limits on a
request's head, which the HTTP protocol (server.RequestDeadline) enforces."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders

# A request's head: request line and headers together, and the number of headers (as
# nginx's large_client_header_buffers and Node's max header size, in spirit).
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
HEAD_LIMIT_DETAIL = (
    f"request headers over the limit ({MAX_HEADER_BYTES:,} bytes, {MAX_HEADERS} headers)"
)
# After a 431, how long the rest of the client's head is read and dropped before closing.
LINGER_SECONDS = 1.0
# Only the page's own scripts and styles run; inline ones are allowed by their hash.
CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


class BodyLimit:
    """Refuse bodies over `max_bytes` with 413, before they are read into memory."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._too_large(scope, receive, send)
        seen = 0

        async def counting_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope, receive, send):
        detail = f"request body over the {self.max_bytes:,}-byte limit"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


class _TooLarge(Exception):
    pass


class SecurityHeaders:
    """Every response says its type is not to be sniffed, and carries a Content-Security-
    Policy (CSP, unless the route set a stricter one for its page)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["x-content-type-options"] = "nosniff"
                headers.setdefault("content-security-policy", CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HeadAsGet:
    """HEAD is answered as GET is (uvicorn leaves out the body): the routes declare GET."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "HEAD":
            scope = {**scope, "method": "GET"}
        await self.app(scope, receive, send)
