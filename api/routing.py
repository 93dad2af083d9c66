"""`EventLoopRoute`: the opt-in that runs a router's plain `def` database routes on the loop.

FastAPI runs a plain `def` route on a worker thread, so that it may block. A router built with
`route_class=EventLoopRoute` runs those of its `def` routes that take a `Session` through
`database.event_loop.run_blocking` instead: in a greenlet on the event loop while the app
serves inside `database.event_loop.cooperation` (PostgreSQL), on a worker thread otherwise.

The one rule for such a route: **nothing in it may block but the database** (the reason and
the mechanism: `database/event_loop.py`). The route's code, signature and OpenAPI stay as
written; `async def` routes and routes without a session are left to FastAPI.
"""

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from database.event_loop import run_blocking


def _session_parameter(endpoint: Callable[..., Any]) -> str | None:
    """The name of the parameter through which `endpoint` receives its `Session`, if any."""
    for name, hint in typing.get_type_hints(endpoint, include_extras=True).items():
        if typing.get_origin(hint) is Annotated:
            hint = typing.get_args(hint)[0]
        if hint is Session:
            return name
    return None


class EventLoopRoute(APIRoute):
    """A route class for routers whose `def` routes block on nothing but their session."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        session_name = _session_parameter(endpoint)
        if session_name is not None and not inspect.iscoroutinefunction(endpoint):
            endpoint = _run_with_session(endpoint, session_name)
        super().__init__(path, endpoint, **kwargs)


def _run_with_session(endpoint: Callable[..., Any], session_name: str) -> Callable[..., Any]:
    # functools.wraps keeps the signature (and so the parameters and OpenAPI) of the route.
    @functools.wraps(endpoint)
    async def run(**values: Any) -> Any:
        return await run_blocking(values[session_name], endpoint, **values)

    return run


def update_routes(
    router: APIRouter, path: str, resource: str, **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated endpoint as both `PUT` (`replace_<resource>`) and `PATCH`
    (`patch_<resource>`) of `path`: the contract gives them one meaning (only the fields sent
    change), so they are one endpoint with two operations. `options` go to both."""

    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        operations = {
            router.put: (
                f"replace_{resource}",
                f"Update a {resource}: only the fields sent change.",
            ),
            router.patch: (f"patch_{resource}", f"Update a {resource} with a JSON merge patch."),
        }
        for method, (name, summary) in operations.items():
            method(path, name=name, operation_id=name, description=summary, **options)(endpoint)
        return endpoint

    return register
