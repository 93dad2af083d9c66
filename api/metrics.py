"""Prometheus metrics: requests and latency by route template, the pools, database errors.

With `PROMETHEUS_MULTIPROC_DIR` set, each worker writes files there and a scrape adds them up."""

import glob
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

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


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration, by method, route template and status."""
    HTTP_REQUESTS.labels(method, route, status).inc()
    HTTP_LATENCY.labels(method, route, status).observe(seconds)


# Each pool gauge: its help text and how it reads a pool.
_POOL_GAUGES: dict[str, tuple[str, Callable[[QueuePool], int]]] = {
    "size": ("Connections the pool keeps open once made (its pool_size).", QueuePool.size),
    "checked_out": ("Connections lent to requests right now.", QueuePool.checkedout),
    "idle": ("Open connections waiting in the pool for a request.", QueuePool.checkedin),
    # Not QueuePool.overflow(): that counts up from -size, negative until the pool fills.
    "overflow": (
        "Connections open beyond the pool size right now (up to its max_overflow).",
        lambda pool: max(0, pool.checkedout() + pool.checkedin() - pool.size()),
    ),
}
# The pool gauges of each registry (a test's own, or the default one), and the default one's
# engines by label. Engines, not their pools: `engine.dispose()` (every lifespan's end)
# replaces the pool.
_pool_gauges: dict[CollectorRegistry, dict[str, Gauge]] = {}
_engines: dict[str, Engine] = {}


def _reading(engine: Engine, gauge: str) -> int:
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    return _POOL_GAUGES[gauge][1](pool)


def register_pool_metrics(
    engine: Engine, registry: CollectorRegistry = REGISTRY, *, pool: str = "write"
) -> None:
    """Gauge `engine`'s pool, labelled `pool`, if it is a QueuePool (the one pool with a size),
    read when Prometheus scrapes, so the hot path pays nothing; registering again changes
    nothing."""
    if not isinstance(engine.pool, QueuePool):
        return
    if registry not in _pool_gauges:
        _pool_gauges[registry] = {
            name: Gauge(
                f"catalog_database_pool_{name}",
                help_text,
                ["pool"],
                registry=registry,
                multiprocess_mode="livesum",
            )
            for name, (help_text, _) in _POOL_GAUGES.items()
        }
    if registry is REGISTRY:
        _engines[pool] = engine
    if MULTIPROCESS_DIRECTORY is None:  # else each worker writes its readings (below)
        for name, gauge in _pool_gauges[registry].items():
            gauge.labels(pool).set_function(partial(_reading, engine, name))


# Multiprocess mode cannot read a pool in another worker at scrape time: there the same
# gauges are files that each worker keeps written, and a scrape adds up the live ones.
POOL_READINGS_INTERVAL_S = 1.0  # how often each worker writes its readings


def _write_pool_readings() -> None:
    """Copy this worker's pools' readings (the default registry's) into its files."""
    for label, engine in _engines.items():
        for name, gauge in _pool_gauges[REGISTRY].items():
            gauge.labels(label).set(_reading(engine, name))


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


router = APIRouter(tags=["service"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics() -> Response:
    """Prometheus metrics, in the text exposition format."""
    registry = REGISTRY
    if MULTIPROCESS_DIRECTORY is not None:
        # A new registry of every worker's files (the default one would add this worker's
        # values twice).
        _write_pool_readings()
        _forget_dead_workers(MULTIPROCESS_DIRECTORY)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=MULTIPROCESS_DIRECTORY)  # type: ignore[no-untyped-call]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
