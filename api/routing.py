"""Routing conventions: one endpoint for both `PUT` and `PATCH`, `/x/` as `/x`, HEAD as GET."""

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def update_routes(
    router: APIRouter, path: str, resource: str, **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated endpoint as both `PUT` (`replace_<resource>`) and `PATCH`
    (`patch_<resource>`) of `path`: the contract gives them one meaning, so they are one
    endpoint with two operations."""

    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        # A route's name is its operationId (main.py's generate_unique_id_function).
        replace = f"Update a {resource}: only the fields sent change."
        router.put(path, name=f"replace_{resource}", summary=replace, **options)(endpoint)
        patch = f"Update a {resource} with a JSON merge patch."
        router.patch(path, name=f"patch_{resource}", summary=patch, **options)(endpoint)
        return endpoint

    return register


class RoutingMiddleware:
    """What routing does not do by itself, for every route present and future:
    - `/products/` is `/products`: both are answered directly, without a redirect (307);
    - HEAD is GET without the body (RFC 9110 §9.3.2): FastAPI's routes answer only the methods
      they declare, and declaring HEAD on each would put it in the OpenAPI document, so a HEAD
      request is routed as a GET and the body of its answer dropped.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            # In place: the outer middleware reads the matched route from this same scope.
            scope["path"] = path.rstrip("/") or "/"
        if scope["method"] != "HEAD":
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
