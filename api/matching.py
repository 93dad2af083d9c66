"""Which routes a request's path leads to, asked of the routes' own `matches()` in routing order.

Routing leaves `scope["route"]` only for FastAPI's own routes, and a 405 names only the methods
of one route, not of every route on the path: asking the routes gives routing's own answers.
"""

from collections.abc import Iterable, Sequence

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

# HEAD is not asked: it is answered wherever GET is (api.routing.RoutingMiddleware).
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _probe(scope: Scope, method: str) -> Scope:
    # A fresh scope: the request's own has been through routing already (a mount moved its
    # root_path, FastAPI left its matching state in it), which would change the answers.
    return {
        "type": "http",
        "method": method,
        "path": scope["path"],
        "root_path": scope.get("app_root_path", scope.get("root_path", "")),
        "headers": scope.get("headers", []),
    }


def _first(routes: Iterable[BaseRoute], probe: Scope, wanted: Match) -> BaseRoute | None:
    return next((route for route in routes if route.matches(probe)[0] is wanted), None)


def route_for(routes: Sequence[BaseRoute], scope: Scope) -> BaseRoute | None:
    """The route routing hands this request to: the first full match, else the first partial."""
    probe = _probe(scope, scope["method"])
    return _first(routes, probe, Match.FULL) or _first(routes, probe, Match.PARTIAL)


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str] | None:
    """Every method some route answers on this path, sorted; HEAD wherever GET; None when the
    path leads into a mounted app, which names its methods in its own 405."""
    allowed = set()
    for method in _METHODS:
        route = _first(routes, _probe(scope, method), Match.FULL)
        if isinstance(route, Mount):
            return None
        if route is not None:
            allowed.add(method)
    if "GET" in allowed:
        allowed.add("HEAD")
    return sorted(allowed)
