"""Call the app as an ASGI server would, for what an HTTP client cannot send or would hide."""

import asyncio

from starlette.types import Message

from main import app


def sent_by_the_app(
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    http_version: str = "1.1",
) -> list[Message]:
    """Every message the app sends for one request (a body-less one unless it reads none)."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": http_version,
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")] if headers is None else headers,
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
    }
    asyncio.run(app(scope, receive, send))
    return sent
