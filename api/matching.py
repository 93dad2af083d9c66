"""Which of the app's routes a request's path leads to, asked of the routes themselves.

Routing leaves the route it chose in `scope["route"]` only for FastAPI's own routes; the
OpenAPI document's route, the docs' static files (a mount) and unmatched paths leave nothing
there. And a route that refuses a method (405) names only its own methods, not those of the
other routes on the same path. Both answers come from the routes' own `matches()`, tried in
routing order, so they are the answers routing itself gives, for every route present and future.
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
    """Every method some route answers on this path, sorted; HEAD wherever GET.

    None when the path leads into a mounted app: its methods are its own business, and it names
    them in its own 405 (Starlette's static files do).
    """
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
