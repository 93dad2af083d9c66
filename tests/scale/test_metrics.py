"""One instance, one `/metrics`: with PROMETHEUS_MULTIPROC_DIR, any worker reports them all.

The service runs as README's production command with two workers. Which worker accepts a
connection is the kernel's choice; each worker's own files in the directory tell the tests
which workers served the requests and which answered each scrape.
"""

import glob
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client import multiprocess

from tests.databases import ON_POSTGRES
from tests.server import Service, migrated_database, service_process

WORKERS = 2
POOL_SIZE = 3  # PostgreSQL's, from DB_POOL_SIZE; a SQLite file gets SQLAlchemy's default, 5
PRODUCTS = {"method": "GET", "route": "/products", "status": "200"}
SCRAPES = {"method": "GET", "route": "/metrics", "status": "200"}


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    with migrated_database("multiprocess_metrics", tmp_path) as url:
        yield url


@pytest.fixture
def metrics_directory(tmp_path: Path) -> Path:
    """Empty, as the start-up script of docs/scaling.md leaves it."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    return directory


@pytest.fixture
def instance(database_url: str, metrics_directory: Path) -> Iterator[Service]:
    with service_process(
        database_url,
        web_concurrency=str(WORKERS),
        prometheus_multiproc_dir=str(metrics_directory),
        db_pool_size=str(POOL_SIZE),
    ) as service:
        _wait_for(lambda: len(_live_workers(metrics_directory)) == WORKERS, service)
        yield service


def _pool_size() -> int:
    return POOL_SIZE if ON_POSTGRES else 5


def _wait_for(condition: Callable[[], bool], service: Service) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; the service's log:\n{service.output()}")
        time.sleep(0.1)


def _live_workers(directory: Path) -> set[int]:
    """Workers serving: each keeps its pool readings in gauge_livesum_<pid>.db while it does."""
    return {
        int(Path(path).stem.rsplit("_", 1)[1])
        for path in glob.glob(str(directory / "gauge_livesum_*.db"))
    }


def _worker_count(directory: Path, pid: int, labels: dict[str, str]) -> float:
    """What one worker alone counted in catalog_http_requests_total{labels}: its own file."""
    files = [str(directory / f"counter_{pid}.db")]
    if not os.path.exists(files[0]):
        return 0.0
    for metric in multiprocess.MultiProcessCollector.merge(files):  # type: ignore[no-untyped-call]
        for sample in metric.samples:
            if sample.name == "catalog_http_requests_total" and sample.labels == labels:
                return float(sample.value)
    return 0.0


def _sample(text: str, name: str, labels: dict[str, str]) -> float | None:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    found = re.search(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


def _scrape(service: Service) -> str:
    answer = httpx.get(f"{service.base_url}/metrics", timeout=10)  # a new connection each
    assert answer.status_code == 200
    return answer.text


def _list_products(service: Service, count: int) -> None:
    """`count` requests on 8 connections at once, so that both workers accept some."""

    def one(_: int) -> int:
        return httpx.get(f"{service.base_url}/products", timeout=10).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(one, range(count))) == {200}


def test_every_scrape_reports_the_requests_of_every_worker(
    instance: Service, metrics_directory: Path
) -> None:
    workers = _live_workers(metrics_directory)
    requests = 0
    # Until both workers have served some (the kernel hands out connections), bounded.
    while requests < 800 and not all(
        _worker_count(metrics_directory, pid, PRODUCTS) for pid in workers
    ):
        _list_products(instance, 40)
        requests += 40
    shares = {pid: _worker_count(metrics_directory, pid, PRODUCTS) for pid in workers}
    assert all(0 < share < requests for share in shares.values()), shares
    assert sum(shares.values()) == requests

    def scrapes_counted() -> dict[int, float]:
        return {pid: _worker_count(metrics_directory, pid, SCRAPES) for pid in workers}

    def counted(total: float) -> Callable[[], bool]:
        return lambda: sum(scrapes_counted().values()) == total

    before = scrapes_counted()
    for scraped in range(1, 41):  # until each worker has answered a scrape, bounded
        text = _scrape(instance)
        assert _sample(text, "catalog_http_requests_total", PRODUCTS) == requests
        assert _sample(text, "catalog_http_request_duration_seconds_count", PRODUCTS) == requests
        # A scrape is counted once answered, by the worker that answered it.
        _wait_for(counted(sum(before.values()) + scraped), instance)
        answered_by = {pid for pid, count in scrapes_counted().items() if count > before[pid]}
        if answered_by == workers:
            break
    assert answered_by == workers


def test_the_pool_gauges_add_up_the_live_workers(
    instance: Service, metrics_directory: Path
) -> None:
    text = _scrape(instance)

    size = _sample(text, "catalog_database_pool_size", {"pool": "write"})
    assert size == WORKERS * _pool_size()
    assert _sample(text, "catalog_database_pool_checked_out", {"pool": "write"}) == 0
    assert "pid=" not in text


def test_a_killed_worker_stops_counting_in_the_pool_gauges(
    instance: Service, metrics_directory: Path
) -> None:
    killed = min(_live_workers(metrics_directory))
    os.kill(killed, signal.SIGKILL)  # no lifespan end: its gauge file stays behind
    # uvicorn starts a replacement, which writes its own readings.
    _wait_for(lambda: len(_live_workers(metrics_directory) - {killed}) == WORKERS, instance)

    text = _scrape(instance)

    assert _sample(text, "catalog_database_pool_size", {"pool": "write"}) == (
        WORKERS * _pool_size()
    )
    assert killed not in _live_workers(metrics_directory)


def test_stopped_workers_take_their_gauges_with_them(
    database_url: str, metrics_directory: Path
) -> None:
    with service_process(
        database_url, web_concurrency=str(WORKERS), prometheus_multiproc_dir=str(metrics_directory)
    ) as service:
        _wait_for(lambda: len(_live_workers(metrics_directory)) == WORKERS, service)
        _list_products(service, 10)
        served = _sample(_scrape(service), "catalog_http_requests_total", PRODUCTS)
        assert served == 10

    # SIGTERM: each worker's lifespan ends and marks it dead. Its counters stay (until the
    # next start empties the directory): what it counted did happen.
    assert not _live_workers(metrics_directory)
    assert glob.glob(str(metrics_directory / "counter_*.db"))
