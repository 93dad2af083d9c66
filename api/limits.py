"""Limits that keep one client from stalling the others (docs/api.md, "Limits").

The HTTP server bounds what it buffers of a request's head while it arrives (server.py); a head
that arrives whole in one read may be larger, and is refused here. An empty `Host` is no `Host`
(granian hands the app `host: ""` when there is none). A body is refused by its declared
`Content-Length` before it is read, or counted while the route reads it and cut off at the limit.
"""

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem
from config import MAX_HEADER_BYTES

MAX_BODY_BYTES = 1024 * 1024
# RFC 9112 §3: a server should take request targets of at least 8000 octets.
MAX_TARGET_BYTES = 8 * 1024


class LimitsMiddleware:
    """414 for a long request target, 431 for large headers, 400 without exactly one `Host`
    (RFC 9112 §3.2), 413 for a large body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hosts: list[bytes] = []
        size, declared = 0, b""
        for name, value in scope["headers"]:
            if name == b"host":
                hosts.append(value)
            elif name == b"content-length":
                declared = value
            size += len(name) + len(value)
        # Compared by its significant digits first: Python refuses to convert 4,300 of them.
        length = declared.lstrip(b"0")
        if len(scope["raw_path"]) + len(scope["query_string"]) > MAX_TARGET_BYTES:
            status, detail = 414, f"The request target is longer than {MAX_TARGET_BYTES} bytes"
        elif size > MAX_HEADER_BYTES:
            status, detail = 431, f"The request headers are larger than {MAX_HEADER_BYTES} bytes"
        elif len(hosts) > 1 or (hosts in ([], [b""]) and scope.get("http_version") == "1.1"):
            status, detail = 400, "An HTTP/1.1 request needs exactly one Host header"
        elif declared.isdigit() and (
            len(length) > len(str(MAX_BODY_BYTES)) or int(length or b"0") > MAX_BODY_BYTES
        ):
            status, detail = 413, f"The request body is larger than {MAX_BODY_BYTES} bytes"
        elif declared:
            # The server delivers no more than the declared length: nothing to count.
            await self.app(scope, receive, send)
            return
        else:
            received = 0

            async def counting_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > MAX_BODY_BYTES:
                        # Raised inside the route's body read: the problem handlers render it.
                        # The rest of the body is never read: the connection cannot carry
                        # another request, and the client must know not to send one on it.
                        raise HTTPException(
                            413,
                            detail=f"The request body is larger than {MAX_BODY_BYTES} bytes",
                            headers={"Connection": "close"},
                        )
                return message

            await self.app(scope, counting_receive, send)
            return
        refusal = problem(Request(scope), status, detail, headers={"Connection": "close"})
        await refusal(scope, receive, send)
