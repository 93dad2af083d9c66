"""`SessionRoute`: plain `def` routes with a session run where their session can wait best."""

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from dependencies.database import run_blocking


def _session_parameter(endpoint: Callable[..., Any]) -> str | None:
    """The name of the parameter through which `endpoint` receives its `Session`, if any."""
    for name, hint in typing.get_type_hints(endpoint, include_extras=True).items():
        if typing.get_origin(hint) is Annotated:
            hint = typing.get_args(hint)[0]
        if hint is Session:
            return name
    return None


class SessionRoute(APIRoute):
    """A route class for routers whose plain `def` routes take the request's session.

    FastAPI runs a plain `def` route on a worker thread. This class runs it through
    `run_blocking` instead: in a greenlet on the event loop when the session is on psycopg2
    (its waits for the server become awaits; no thread hand-off), on a worker thread otherwise.
    The route's code, signature and OpenAPI stay as written; `async def` routes and routes
    without a session are left to FastAPI.
    """

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
