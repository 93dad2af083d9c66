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


class RequestContextMiddleware:
    """Outermost, so that every response carries `X-Request-ID`: an unexpected error's 500 too,
    which it renders itself rather than leaving it to Starlette's ServerErrorMiddleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The client's X-Request-ID if it is 1-128 visible ASCII characters, else a new one.
        sent = dict(scope["headers"]).get(b"x-request-id", b"")
        sane = 0 < len(sent) <= 128 and all(0x21 <= b <= 0x7E for b in sent)
        request_id = sent.decode("ascii") if sane else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: int | None = None  # until the response starts

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception as exc:
            if status is not None:
                raise
            response = await unexpected_error(Request(scope), exc)
            await response(scope, receive, send_with_request_id)
        finally:
            elapsed = time.perf_counter() - started
            # FastAPI tags the scope with its own routes only; the others (the OpenAPI document,
            # the docs' static files) are looked up, and named by their template too, so that
            # a label never holds a raw path (every distinct path would be a new series).
            route = scope.get("route") or route_for(scope["app"].routes, scope)
            line = {
                "client": (scope.get("client") or ("-", 0))[0],
                "method": scope["method"],
                # The template as documented: `/products/{product_id}`, without `:digits`.
                "route": getattr(route, "path_format", None) or "<unmatched>",
                "status": status or 500,
                "duration_ms": round(elapsed * 1000, 2),
            }
            # One mapping: the text line's fields by name, and the JSON line's extra fields.
            access_log.info(
                "%(client)s %(method)s %(route)s %(status)d %(duration_ms).1fms", line, extra=line
            )
            observe_request(line["method"], line["route"], line["status"], elapsed)
            request_id_var.reset(token)
