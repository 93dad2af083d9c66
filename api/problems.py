"""One set of handlers renders every error, from any layer, as RFC 9457 problem+json."""

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.matching import allowed_methods
from api.metrics import DATABASE_ERRORS, POOL_TIMEOUTS
from crud.errors import CatalogError

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 2
# A 422 names the first errors and counts the rest, so that its size does not grow with the
# body: a body of many bad fields would otherwise get an answer several times its own size.
MAX_LISTED_ERRORS = 50
# Field names come from the client: one name is cut at this length in `loc`.
_MAX_LOC_PART = 100

# PostgreSQL's SQLSTATEs for a statement cancelled by DB_STATEMENT_TIMEOUT_MS (or a cancel
# request) and a lock wait cut off by DB_LOCK_TIMEOUT_MS: the database is busy, not broken.
_TIMED_OUT = {"57014": "query_canceled", "55P03": "lock_not_available"}
# PostgreSQL's SQLSTATEs for a table or column that does not exist: a database that was never
# migrated, or not to this release. Nothing changes until someone migrates: never a 500.
_MISSING_SCHEMA = {"42P01", "42703"}

logger = logging.getLogger("catalog.errors")


def problem(
    request: Request,
    status: int,
    detail: str,
    *,
    type_: str = "about:blank",
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _loc(loc: tuple[Any, ...]) -> list[Any]:
    return [
        f"{part[:_MAX_LOC_PART]}…" if isinstance(part, str) and len(part) > _MAX_LOC_PART else part
        for part in loc
    ]


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        # Routing found nothing (`/products/abc`: an id is a number from 1 to 2147483647).
        detail = f"Nothing is at {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # The route that refused names only its own methods; the path may have more routes.
        methods = allowed_methods(request.app.routes, request.scope)
        if methods is not None:
            headers["Allow"] = ", ".join(methods)
    return problem(request, exc.status_code, detail, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    for error in errors:
        if error["type"] == "json_invalid":
            reason = error.get("ctx", {}).get("error", "invalid JSON")
            return problem(
                request,
                400,
                f"The request body is not valid JSON: {reason} at position {error['loc'][-1]}",
            )
    issues = [
        {"loc": _loc(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in errors[:MAX_LISTED_ERRORS]
    ]
    first = issues[0]
    where = ".".join(str(part) for part in first["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return problem(
        request, 422, f"{where}: {first['msg']}{more}", errors=issues, total_errors=len(errors)
    )


def catalog_problem(request: Request, exc: CatalogError) -> JSONResponse:
    return problem(
        request,
        exc.status,
        exc.detail,
        type_=exc.type,
        title=exc.title,
        headers=exc.headers or None,
        **exc.extra,
    )


async def _catalog_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CatalogError)
    return catalog_problem(request, exc)


def _database_unavailable(
    request: Request, detail: str = "The database is unavailable; try again shortly"
) -> JSONResponse:
    return problem(request, 503, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # The database's own words can hold SQL and data: they go to the log, never to the client.
    if isinstance(exc, sa_exc.TimeoutError):
        logger.warning("connection pool exhausted on %s %s", request.method, request.url.path)
        DATABASE_ERRORS.labels("pool_timeout").inc()
        POOL_TIMEOUTS.inc()
        return _database_unavailable(request)
    assert isinstance(exc, sa_exc.DBAPIError)
    # The driver's own first line: SQLAlchemy's text adds the SQL and a link, over many lines.
    reason = str(exc.orig).strip().split("\n", 1)[0]
    pgcode = getattr(exc.orig, "pgcode", None) or ""
    if pgcode in _MISSING_SCHEMA or reason.startswith(("no such table", "no such column")):
        logger.error("the database is not migrated to this release: %s", reason)
        DATABASE_ERRORS.labels("schema").inc()
        return problem(
            request,
            503,
            "The database is not migrated to this release's schema: run migrations"
            " (alembic upgrade head)",
            headers={"Retry-After": "30"},
        )
    timed_out = _TIMED_OUT.get(pgcode)
    if timed_out:
        logger.warning("%s on %s %s: %s", timed_out, request.method, request.url.path, reason)
        DATABASE_ERRORS.labels("timeout").inc()
        return _database_unavailable(
            request, "The database did not answer in time; try again shortly"
        )
    if exc.connection_invalidated or isinstance(
        exc, sa_exc.OperationalError | sa_exc.InterfaceError
    ):
        logger.warning(
            "database unavailable on %s %s: %s", request.method, request.url.path, reason
        )
        DATABASE_ERRORS.labels("unavailable").inc()
        return _database_unavailable(request)
    if isinstance(exc, sa_exc.DataError):
        logger.info("value rejected by the database: %s", reason)
        DATABASE_ERRORS.labels("data").inc()
        return problem(request, 422, "A value is outside what the database can store")
    if isinstance(exc, sa_exc.IntegrityError):
        logger.info("constraint violation: %s", reason)
        DATABASE_ERRORS.labels("integrity").inc()
        return problem(request, 409, "The change conflicts with existing data")
    DATABASE_ERRORS.labels("other").inc()
    return await unexpected_error(request, exc)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, 500, "An unexpected error occurred")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(CatalogError, _catalog_error)
    app.add_exception_handler(sa_exc.DBAPIError, _database_error)
    app.add_exception_handler(sa_exc.TimeoutError, _database_error)
    app.add_exception_handler(Exception, unexpected_error)
