"""CORS for the origins in CORS_ORIGINS (none: no CORS), with refusals as problems."""

from fastapi import FastAPI, Request
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from api.problems import problem
from config import Settings


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, whose refused preflight (`400 text/plain`) is problem+json
    like every error, with the same status, text and CORS headers."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await super().__call__(scope, receive, send)
            return
        headers = Headers(scope=scope)
        # Starlette's own test for a preflight (CORSMiddleware.__call__).
        if "origin" in headers and "access-control-request-method" in headers:
            response = self.preflight_response(request_headers=headers)
            if response.status_code == 400:
                kept = response.headers.mutablecopy()
                del kept["content-type"], kept["content-length"]
                detail = bytes(response.body).decode()
                response = problem(Request(scope), 400, detail, headers=kept)
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def install_cors(app: FastAPI, settings: Settings) -> None:
    if not settings.cors_origins:
        return
    app.add_middleware(
        ProblemCORSMiddleware,
        allow_origins=settings.cors_origins,
        # API keys travel in headers, never cookies: no credentials, so no wildcard pitfalls.
        allow_credentials=False,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "Consistency-Token",
            "Idempotency-Key",
            "If-Match",
            "If-None-Match",
            "X-API-Key",
            "X-Request-ID",
        ],
        expose_headers=[
            "Consistency-Token",
            "ETag",
            "Location",
            "Link",
            "X-Total-Count",
            "X-Request-ID",
            "Idempotent-Replayed",
        ],
    )
