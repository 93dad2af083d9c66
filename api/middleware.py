"""Pure ASGI middleware: what holds for every request, before and after any route runs.

Most of it is cheap bookkeeping (request ids, the access line, metrics, CORS, limits). Two
layers are there only with a replica (`main`), and cost more: a write's answer waits for one
statement (its `Consistency-Token`), and a read the replica failed runs a second time.
"""

import logging
import time
import uuid

from fastapi import Request
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.logs import request_id_var
from api.matching import route_for
from api.metrics import observe_request
from api.problems import problem, unexpected_error

access_log = logging.getLogger("catalog.access")

_MAX_REQUEST_ID_LENGTH = 128


def _sane_request_id(raw: bytes | None) -> str | None:
    """The client's X-Request-ID if it is 1-128 visible ASCII characters, else None."""
    if raw is None or not 0 < len(raw) <= _MAX_REQUEST_ID_LENGTH:
        return None
    if all(0x21 <= byte <= 0x7E for byte in raw):
        return raw.decode("ascii")
    return None


class TrailingSlashMiddleware:
    """`/products/` is `/products`: answer both directly instead of redirecting (307)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                # In place: the outer middleware reads the matched route from this same scope.
                scope["path"] = path.rstrip("/") or "/"
        await self.app(scope, receive, send)


class HeadMiddleware:
    """HEAD is GET without the body (RFC 9110 §9.3.2), on every GET route, present and future.

    FastAPI's routes answer only the methods they declare, and declaring HEAD on each would put
    it in the OpenAPI document. Instead a HEAD request is routed as a GET and the body of the
    answer is dropped: status and headers (Content-Length, ETag, ...) are the GET's.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        # A copy: the server and the access log read the method from the original, which must
        # still say HEAD (a server sends no body for HEAD, but expects all of it for a GET).
        as_get = {**scope, "method": "GET"}

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(as_get, receive, send_without_body)
        finally:
            # Routing wrote its choice into the copy; the outer middleware reads the original.
            if "route" in as_get:
                scope["route"] = as_get["route"]


class RequestHeadMiddleware:
    """400 for a request without exactly one `Host` header (RFC 9112 §3.2); 431 for headers
    over `max_bytes` in all.

    The HTTP server bounds what it buffers of a request's head (main.MAX_HEADER_BYTES) but
    only while the head is incomplete: a head that arrives whole in one read may be larger,
    and is refused here. HTTP/1.0 predates `Host` and may omit it; HTTP/2 and 3 carry
    `:authority` instead, which the server may or may not copy into `Host`. Two are refused
    whatever the version.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hosts: list[bytes] = []
            size = 0
            for name, value in scope["headers"]:
                if name == b"host":
                    hosts.append(value)
                size += len(name) + len(value)
            # An empty Host is no Host: granian hands the app `host: ""` when there is none.
            missing = hosts in ([], [b""])
            if size > self.max_bytes:
                status, detail = 431, f"The request headers are larger than {self.max_bytes} bytes"
            elif len(hosts) > 1 or (missing and scope.get("http_version") == "1.1"):
                status, detail = 400, "An HTTP/1.1 request needs exactly one Host header"
            else:
                await self.app(scope, receive, send)
                return
            refusal = problem(Request(scope), status, detail, headers={"Connection": "close"})
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, whose refused preflight is problem+json like every error.

    Starlette answers it `400 text/plain` ("Disallowed CORS origin"); the answer keeps its
    status, text and CORS headers, in the contract's format.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await super().__call__(scope, receive, send)
            return
        headers = Headers(scope=scope)
        # Starlette's own test for a preflight (CORSMiddleware.__call__).
        if "origin" in headers and "access-control-request-method" in headers:
            response = self.preflight_response(request_headers=headers)
            if response.status_code == 400:
                kept = {
                    name: value
                    for name, value in response.headers.items()
                    if name not in ("content-type", "content-length")
                }
                detail = bytes(response.body).decode()
                response = problem(Request(scope), 400, detail, headers=kept)
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class BodyLimitMiddleware:
    """413 for a body over `max_bytes`, before it is read into memory.

    A declared Content-Length over the limit is refused without reading anything; a chunked or
    lying body is counted while the route reads it and cut off at the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the route's body read: the problem handlers render it.
                    raise HTTPException(413, detail=self._detail)
            return message

        await self.app(scope, counting_receive, send)

    @property
    def _detail(self) -> str:
        return f"The request body is larger than {self.max_bytes} bytes"

    def _too_large(self, scope: Scope) -> ASGIApp:
        return problem(Request(scope), 413, self._detail, headers={"Connection": "close"})


class RequestContextMiddleware:
    """Request id in and out, one access-log line and the HTTP metrics for every request.

    Outermost, so that every response carries `X-Request-ID` — an unexpected error's 500 too,
    which it renders itself rather than leaving it to Starlette's ServerErrorMiddleware.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = _sane_request_id(headers.get(b"x-request-id")) or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", ()),
                        (b"x-request-id", request_id.encode()),
                    ],
                }
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception as exc:
            if response_started:
                raise
            response = await unexpected_error(Request(scope), exc)
            await response(scope, receive, send_with_request_id)
        finally:
            elapsed = time.perf_counter() - started
            # FastAPI tags the scope with its own routes only; the others (the OpenAPI document,
            # the docs' static files) are looked up, and named by their template too, so that
            # a label never holds a raw path (every distinct path would be a new series).
            route = scope.get("route") or route_for(scope["app"].routes, scope)
            # The template as documented: `/products/{product_id}`, without `:int`.
            template = getattr(route, "path_format", None) or "<unmatched>"
            method = scope["method"]
            access_log.info(
                "%s %s %d %.1fms",
                method,
                template,
                status,
                elapsed * 1000,
                extra={
                    "method": method,
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            observe_request(method, template, status, elapsed)
            request_id_var.reset(token)
