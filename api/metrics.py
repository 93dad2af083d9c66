"""Prometheus metrics: requests and latency by route template, the pool, database errors."""

from collections.abc import Iterator
from functools import cache

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

HTTP_REQUESTS = Counter(
    "catalog_http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "catalog_http_request_duration_seconds",
    "Time from receiving a request to the end of its response.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DATABASE_ERRORS = Counter(
    "catalog_database_errors_total",
    "Database errors by kind (unavailable, pool_timeout, timeout, data, integrity, other).",
    ["kind"],
)
POOL_TIMEOUTS = Counter(
    "catalog_database_pool_timeouts_total",
    "Requests answered 503 because no pooled connection became free in DB_POOL_TIMEOUT.",
)


@cache  # one entry per series seen, as the metrics themselves keep one child per series
def _http_series(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    # `labels()` validates and locks on every call; the children it returns are for keeps.
    # Whoever removes series (`HTTP_REQUESTS.clear()`, `.remove(...)`) must also call
    # `_http_series.cache_clear()`, or later requests count into children no longer exported.
    return HTTP_REQUESTS.labels(method, route, status), HTTP_LATENCY.labels(method, route, status)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration, by method, route template and status."""
    requests, latency = _http_series(method, route, status)
    requests.inc()
    latency.observe(seconds)


class _QueuePoolCollector(Collector):
    """Reads the pool's gauges when Prometheus scrapes, so the hot path pays nothing."""

    def __init__(self, engine: Engine) -> None:
        # The engine, not its pool: `engine.dispose()` (every lifespan's end) replaces the pool.
        self._engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self._engine.pool
        assert isinstance(pool, QueuePool)
        size, checked_out, idle = pool.size(), pool.checkedout(), pool.checkedin()
        for name, help_text, value in (
            ("size", "Connections the pool keeps open once made (its pool_size).", size),
            ("checked_out", "Connections lent to requests right now.", checked_out),
            ("idle", "Open connections waiting in the pool for a request.", idle),
            # Not QueuePool.overflow(): that counts up from -size, negative until the pool fills.
            (
                "overflow",
                "Connections open beyond the pool size right now (up to its max_overflow).",
                max(0, checked_out + idle - size),
            ),
        ):
            yield GaugeMetricFamily(f"catalog_database_pool_{name}", help_text, value)


# Held, not their ids: an id can be reused once its object is gone (a test's engine or registry).
_gauged: list[tuple[Engine, CollectorRegistry]] = []


def register_pool_metrics(engine: Engine, registry: CollectorRegistry = REGISTRY) -> None:
    """Gauge `engine`'s pool if it is a QueuePool, the one pool a size applies to; once.

    PostgreSQL gets one sized from the settings, and a SQLite file SQLAlchemy's default one; an
    in-memory SQLite database shares one connection (StaticPool): nothing to gauge.
    """
    if not isinstance(engine.pool, QueuePool):
        return
    # `python main.py` imports main twice (as __main__, then uvicorn's "main:app").
    if any(seen is engine and into is registry for seen, into in _gauged):
        return
    registry.register(_QueuePoolCollector(engine))
    _gauged.append((engine, registry))


router = APIRouter(tags=["service"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics() -> Response:
    """Prometheus metrics, in the text exposition format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
