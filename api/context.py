"""The request context: an id for every request, its access line and its HTTP metrics."""

import logging
import time
import uuid

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.logs import request_id_var
from api.matching import route_for
from api.metrics import observe_request
from api.problems import unexpected_error

access_log = logging.getLogger("catalog.access")

_MAX_REQUEST_ID_LENGTH = 128


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
        # The client's X-Request-ID if it is 1-128 visible ASCII characters, else a new one.
        sent = dict(scope["headers"]).get(b"x-request-id", b"")
        sane = 0 < len(sent) <= _MAX_REQUEST_ID_LENGTH and all(0x21 <= b <= 0x7E for b in sent)
        request_id = sent.decode("ascii") if sane else uuid.uuid4().hex
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
            client = scope.get("client") or ("-", 0)
            access_log.info(
                "%s %s %s %d %.1fms",
                client[0],
                method,
                template,
                status,
                elapsed * 1000,
                extra={
                    "client": client[0],
                    "method": method,
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            observe_request(method, template, status, elapsed)
            request_id_var.reset(token)
