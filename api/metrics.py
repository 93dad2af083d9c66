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


class _QueuePoolsCollector(Collector):
    """Reads the pools' gauges when Prometheus scrapes, so the hot path pays nothing."""

    def __init__(self) -> None:
        # Engines, not their pools: `engine.dispose()` (every lifespan's end) replaces the pool.
        self.engines: dict[str, Engine] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        readings: dict[str, list[tuple[str, int]]] = {}
        for label, engine in self.engines.items():
            pool = engine.pool
            assert isinstance(pool, QueuePool)
            size, checked_out, idle = pool.size(), pool.checkedout(), pool.checkedin()
            # Not QueuePool.overflow(): that counts up from -size, negative until the pool fills.
            overflow = max(0, checked_out + idle - size)
            for name, value in (
                ("size", size),
                ("checked_out", checked_out),
                ("idle", idle),
                ("overflow", overflow),
            ):
                readings.setdefault(name, []).append((label, value))
        for name, help_text in _POOL_GAUGES.items():
            family = GaugeMetricFamily(f"catalog_database_pool_{name}", help_text, labels=["pool"])
            for label, value in readings.get(name, []):
                family.add_metric([label], value)
            yield family


_POOL_GAUGES = {
    "size": "Connections the pool keeps open once made (its pool_size).",
    "checked_out": "Connections lent to requests right now.",
    "idle": "Open connections waiting in the pool for a request.",
    "overflow": "Connections open beyond the pool size right now (up to its max_overflow).",
}
# One collector per registry (a test's own, or the default one).
_collectors: list[tuple[CollectorRegistry, _QueuePoolsCollector]] = []


def register_pool_metrics(
    engine: Engine, registry: CollectorRegistry = REGISTRY, *, pool: str = "write"
) -> None:
    """Gauge `engine`'s pool, labelled `pool`, if it is a QueuePool, the one pool a size
    applies to. PostgreSQL's pools are sized from the settings, a SQLite file gets
    SQLAlchemy's default one; an in-memory SQLite database shares one connection (StaticPool):
    nothing to gauge. Registering the same engine again changes nothing (`python main.py`
    imports main twice: as __main__, then uvicorn's "main:app")."""
    if not isinstance(engine.pool, QueuePool):
        return
    collector = next((known for into, known in _collectors if into is registry), None)
    if collector is None:
        collector = _QueuePoolsCollector()
        registry.register(collector)
        _collectors.append((registry, collector))
    collector.engines[pool] = engine


router = APIRouter(tags=["service"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics() -> Response:
    """Prometheus metrics, in the text exposition format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
