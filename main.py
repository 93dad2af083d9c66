"""Assembles the app: settings, logging, routers, middleware and error handlers."""

import gc
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from api.context import RequestContextMiddleware
from api.cors import install_cors
from api.docs import install_offline_docs
from api.idempotency import install_idempotency
from api.limits import LimitsMiddleware
from api.logs import configure_logging
from api.metrics import register_pool_metrics, sharing_pool_readings
from api.metrics import router as metrics_router
from api.openapi import install_openapi
from api.problems import install_problem_handlers
from api.replica import install_replica
from api.routes import categories, products, service
from api.routing import RoutingMiddleware
from config import PROJECT_DIR, get_settings, misspelt_keys
from crud.health import required_revision, schema_revision
from database.engine import engine, read_engine
from database.session import ReadSessionLocal
from database.timeouts import waiting_with_deadlines

__version__ = "0.1.0"

settings = get_settings()
configure_logging(settings)
logger = logging.getLogger("catalog")
for key, setting in misspelt_keys().items():
    logger.warning(".env sets %s, which is no setting: did you mean %s?", key, setting)


def report_database() -> None:
    """One line at start-up when the database cannot serve this release; serving goes on,
    and `/health/ready` answers 503 until it can."""
    where = engine.url.render_as_string(hide_password=True)
    try:
        with ReadSessionLocal() as session:
            current = schema_revision(session)
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0]
        logger.error("database %s is unavailable: %s", where, reason)
        return
    required = required_revision()
    if current != required:
        logger.warning(
            "database %s is at migration %s, this release needs %s: run `make migrate`"
            " (alembic upgrade head)",
            where,
            current or "none (never migrated)",
            required,
        )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    if not settings.api_keys:
        logger.warning("API_KEYS is not set: writes (POST, PUT, PATCH, DELETE) are open to anyone")
    # Every call to PostgreSQL waits with a deadline (database/timeouts.py); with several
    # workers, each one shares its pools' readings with the others' `/metrics`.
    with waiting_with_deadlines(settings), sharing_pool_readings():
        await run_in_threadpool(report_database)
        yield
    # After the server has let in-flight requests finish (SIGTERM): every acknowledged write
    # is committed already, so closing the pools loses nothing.
    engine.dispose()
    read_engine.dispose()


DESCRIPTION = """
Create, read, list, update and delete products, adjust their stock atomically, and create up
to 1000 of them in one all-or-nothing request.

- **Errors** are RFC 9457 `application/problem+json` bodies; a 422 lists the invalid fields
  in `errors` (at most 50; `total_errors` counts them all).
- **Concurrency**: every product has a `version` and an `ETag` (`"<version>"`). Send it back in
  `If-Match` on `PUT`, `PATCH`, `DELETE` and `stock` to write only if nobody else has (412
  otherwise); `If-None-Match` on `GET` answers 304 while it is current.
- **Listing**: filter (`q`, `sku`, `min_price`, `max_price`, `in_stock`), sort (`sort=-price,name`)
  and page by offset (`skip`) or by cursor (follow the `Link: rel="next"` header).
  `X-Total-Count` holds the number of matching products.
- **Categories**: the same conventions at `/categories`; a product names one with
  `category_id`, `GET /products?category_id=N` lists its products, and `expand=category`
  embeds it. A category that products still name cannot be deleted (409).
- **Retries**: send an `Idempotency-Key` with a `POST` and a retry after a lost answer gets
  the kept answer (`Idempotent-Replayed: true`) instead of writing twice.
- **Writes** need an API key (`Authorization: Bearer <key>` or `X-API-Key`) when the server
  has `API_KEYS` set; reads are public.
- Every response carries `X-Request-ID`.
"""

app = FastAPI(
    title="Catalog",
    version=__version__,
    summary="Products, their prices and their stock, as JSON over HTTP.",
    description=DESCRIPTION,
    # operationIds are the route functions' names: create_product, list_products, ...
    generate_unique_id_function=lambda route: route.name,
    lifespan=lifespan,
    redirect_slashes=False,
    docs_url=None,
    redoc_url=None,
    # This service's telemetry is Prometheus (/metrics) and access logs with request ids.
    # FastAPI's native OpenTelemetry hooks look up the global providers on every request even
    # when none is configured; to trace with OpenTelemetry, configure a provider and drop this.
    telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
)
app.add_middleware(RoutingMiddleware)  # innermost: `/x/` is `/x`, HEAD is GET
install_replica(app, settings)  # inside CORS, the limits and the request context
install_cors(app, settings)
app.add_middleware(LimitsMiddleware)
app.add_middleware(RequestContextMiddleware)  # outermost: sees and tags every response
install_problem_handlers(app)
install_idempotency(app)
app.include_router(products.router)
app.include_router(categories.router)
app.include_router(service.router)
app.include_router(metrics_router)
install_offline_docs(app)
install_openapi(app)
register_pool_metrics(engine, pool="write")
if read_engine is not engine:
    register_pool_metrics(read_engine, pool="read")

# Everything loaded so far lives as long as the process (each worker imports this module):
# gc.freeze(), after a collection so that no start-up garbage is kept forever, moves it out of
# the collector's sight, so a full collection scans only what requests allocate and its pause,
# which every request in flight shares, stays short (bench/README.md, "Settings measured earlier").
gc.collect()
gc.freeze()


if __name__ == "__main__":
    # The production entry point: server.py serves `main:app`. It runs in a fresh interpreter
    # (same process id, so signals still reach it) because the metrics' multiprocess mode is
    # chosen when prometheus_client is first imported, as this process has done already.
    os.execv(sys.executable, [sys.executable, str(PROJECT_DIR / "server.py")])
