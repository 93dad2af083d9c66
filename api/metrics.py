"""Prometheus metrics: requests and latency by route template, the pool, database errors."""

from collections.abc import Iterator
from functools import cache

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

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
    "Database errors by kind (unavailable, pool_timeout, data, integrity, other).",
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


class _PoolCollector(Collector):
    """Reads the pool's gauges when Prometheus scrapes, so the hot path pays nothing."""

    def __init__(self, engine: Engine) -> None:
        self._pool = engine.pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, help_text, reading in (
            ("checked_out", "Connections lent to requests right now.", "checkedout"),
            ("overflow", "Connections open beyond the pool size right now.", "overflow"),
            ("size", "Configured pool size.", "size"),
        ):
            read = getattr(self._pool, reading, None)
            if read is not None:
                yield GaugeMetricFamily(f"catalog_database_pool_{name}", help_text, read())


_registered_pools: set[int] = set()


def register_pool_metrics(engine: Engine) -> None:
    if id(engine) not in _registered_pools:
        REGISTRY.register(_PoolCollector(engine))
        _registered_pools.add(id(engine))


router = APIRouter(tags=["service"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics() -> Response:
    """Prometheus metrics, in the text exposition format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
