"""Prometheus metrics: requests and latency by route template, the pools, database errors.

With `PROMETHEUS_MULTIPROC_DIR` set, each worker writes files there and a scrape adds them up."""

import glob
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

# Read from the environment, as prometheus_client did on import (it never sees `.env`).
MULTIPROCESS_DIRECTORY = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if MULTIPROCESS_DIRECTORY is not None and not os.path.isdir(MULTIPROCESS_DIRECTORY):
    # Every metric below would fail to open its file: say it in one line, and stop.
    sys.exit(f"catalog: PROMETHEUS_MULTIPROC_DIR={MULTIPROCESS_DIRECTORY} is not a directory")

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
    # `labels()` validates and locks on every call. Whoever removes series must also call
    # `_http_series.cache_clear()`, or later requests count into children no longer exported.
    return HTTP_REQUESTS.labels(method, route, status), HTTP_LATENCY.labels(method, route, status)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration, by method, route template and status."""
    requests, latency = _http_series(method, route, status)
    requests.inc()
    latency.observe(seconds)


_POOL_GAUGES = {
    "size": "Connections the pool keeps open once made (its pool_size).",
    "checked_out": "Connections lent to requests right now.",
    "idle": "Open connections waiting in the pool for a request.",
    "overflow": "Connections open beyond the pool size right now (up to its max_overflow).",
}


def _pool_readings(engines: dict[str, Engine]) -> Iterator[tuple[str, str, int]]:
    """(gauge, pool label, value) of every pool, read now."""
    for label, engine in engines.items():
        pool = engine.pool
        assert isinstance(pool, QueuePool)
        size, checked_out, idle = pool.size(), pool.checkedout(), pool.checkedin()
        # Not QueuePool.overflow(): that counts up from -size, negative until the pool fills.
        overflow = max(0, checked_out + idle - size)
        for name, value in zip(_POOL_GAUGES, (size, checked_out, idle, overflow), strict=True):
            yield name, label, value


class _QueuePoolsCollector(Collector):
    """Reads the pools' gauges when Prometheus scrapes, so the hot path pays nothing."""

    def __init__(self) -> None:
        # Engines, not their pools: `engine.dispose()` (every lifespan's end) replaces the pool.
        self.engines: dict[str, Engine] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            name: GaugeMetricFamily(f"catalog_database_pool_{name}", help_text, labels=["pool"])
            for name, help_text in _POOL_GAUGES.items()
        }
        for name, label, value in _pool_readings(self.engines):
            families[name].add_metric([label], value)
        yield from families.values()


# One collector per registry (a test's own, or the default one).
_collectors: dict[CollectorRegistry, _QueuePoolsCollector] = {}


def register_pool_metrics(
    engine: Engine, registry: CollectorRegistry = REGISTRY, *, pool: str = "write"
) -> None:
    """Gauge `engine`'s pool, labelled `pool`, if it is a QueuePool (the one pool with a size);
    registering again changes nothing (`python main.py` imports main twice)."""
    if not isinstance(engine.pool, QueuePool):
        return
    if registry not in _collectors:
        _collectors[registry] = _QueuePoolsCollector()
        registry.register(_collectors[registry])
    _collectors[registry].engines[pool] = engine


# Multiprocess mode cannot run a collector in another worker at scrape time: there the same
# gauges are files that each worker keeps written, and a scrape adds up the live ones.
POOL_READINGS_INTERVAL_S = 1.0  # how often each worker writes its readings
_SHARED_POOL_GAUGES = {
    name: Gauge(
        f"catalog_database_pool_{name}",
        help_text,
        ["pool"],
        multiprocess_mode="livesum",
        registry=None,
    )
    for name, help_text in _POOL_GAUGES.items()
}


def _write_pool_readings() -> None:
    """Copy this worker's pools' readings (the default registry's) into its files."""
    if collector := _collectors.get(REGISTRY):
        for name, label, value in _pool_readings(collector.engines):
            _SHARED_POOL_GAUGES[name].labels(label).set(value)


@contextmanager
def sharing_pool_readings() -> Iterator[None]:
    """In multiprocess mode, keep this worker's pool readings in its files while it serves."""
    if MULTIPROCESS_DIRECTORY is None:
        yield
        return
    stop = threading.Event()

    def keep_writing() -> None:
        while not stop.wait(POOL_READINGS_INTERVAL_S):
            _write_pool_readings()

    _write_pool_readings()
    writer = threading.Thread(target=keep_writing, name="catalog-pool-readings", daemon=True)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()
        # Documented for a process manager to call; the server has no such hook.
        multiprocess.mark_process_dead(os.getpid(), MULTIPROCESS_DIRECTORY)  # type: ignore[no-untyped-call]


def _forget_dead_workers(directory: str) -> None:
    """Remove the live gauges of workers that died without stopping; their counts stay."""
    # The files are named <type>_<mode>_<pid>.db.
    pids = {
        int(os.path.basename(path).removesuffix(".db").rsplit("_", 1)[1])
        for path in glob.glob(os.path.join(directory, "gauge_live*_*.db"))
    }
    for pid in pids:
        try:
            os.kill(pid, 0)  # signal 0: only whether the process exists
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass  # it exists, as another user's


def _registry() -> CollectorRegistry:
    """The registry a scrape exports; in multiprocess mode, a new one of every worker's files
    (the default registry would add this worker's values twice)."""
    if MULTIPROCESS_DIRECTORY is None:
        return REGISTRY
    _write_pool_readings()
    _forget_dead_workers(MULTIPROCESS_DIRECTORY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=MULTIPROCESS_DIRECTORY)  # type: ignore[no-untyped-call]
    return registry


router = APIRouter(tags=["service"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics() -> Response:
    """Prometheus metrics, in the text exposition format."""
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)
