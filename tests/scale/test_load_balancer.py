"""Stateless instances behind HAProxy (deploy/haproxy.cfg): any instance answers any request,
and a rolling restart under load loses nothing.

A private PostgreSQL cluster, two service instances as real uvicorn processes, HAProxy in
front of them; everything stopped, and the cluster's data removed, at the end.
"""

import logging
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.postgres_cluster import private_cluster
from tests.scale.proxies import HAProxy, Instance, haproxy
from tests.server import migrate

NAMES = ("app1", "app2")
# Longer than HAProxy takes to see a failing /health/ready (deploy/haproxy.cfg: fall 2).
DRAIN_S = "3"


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with private_cluster() as cluster:
        admin = create_engine(cluster.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("CREATE DATABASE catalog"))
        admin.dispose()
        url = make_url(cluster.url).set(database="catalog").render_as_string(hide_password=False)
        migrate(url)
        yield url


@pytest.fixture(scope="module")
def instances(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Instance]]:
    logs = tmp_path_factory.mktemp("instances")
    started = {
        name: Instance(database_url, logs, db_pool_size="5", shutdown_drain_s=DRAIN_S)
        for name in NAMES
    }
    try:
        for instance in started.values():
            instance.start()
        yield started
    finally:
        for instance in started.values():
            instance.stop()


@pytest.fixture(scope="module")
def balancer(instances: dict[str, Instance]) -> Iterator[HAProxy]:
    with haproxy({name: instance.port for name, instance in instances.items()}) as proxy:
        for name in NAMES:
            proxy.wait_until(name, "UP")
        yield proxy


@pytest.fixture(autouse=True)
def _quiet_httpx() -> Iterator[None]:
    """httpx logs every request at INFO: thousands of lines in a failure's report."""
    httpx_logger = logging.getLogger("httpx")
    level = httpx_logger.level
    httpx_logger.setLevel(logging.WARNING)
    yield
    httpx_logger.setLevel(level)


def test_cursors_etags_and_idempotency_keys_work_across_instances(
    instances: dict[str, Instance],
) -> None:
    tag = uuid.uuid4().hex[:8]
    with (
        httpx.Client(base_url=instances["app1"].base_url, timeout=30) as one,
        httpx.Client(base_url=instances["app2"].base_url, timeout=30) as other,
    ):
        made = [
            one.post("/products", json={"name": f"Across {tag} {i}", "price": 1}) for i in range(3)
        ]
        first_page = one.get("/products", params={"q": tag, "limit": 2})
        second_page = other.get(first_page.links["next"]["url"])
        etag = one.get(made[0].headers["location"]).headers["etag"]
        not_modified = other.get(made[0].headers["location"], headers={"If-None-Match": etag})
        written = other.patch(
            made[0].headers["location"], json={"quantity": 5}, headers={"If-Match": etag}
        )
        stale = one.patch(
            made[0].headers["location"], json={"quantity": 6}, headers={"If-Match": etag}
        )
        keyed = {"name": f"Keyed {tag}", "price": 2}
        key = {"Idempotency-Key": f"across-{tag}"}
        original = one.post("/products", json=keyed, headers=key)
        replayed = other.post("/products", json=keyed, headers=key)
        found = other.get("/products", params={"q": f"Keyed {tag}"})

    assert [response.status_code for response in made] == [201] * 3
    names = [product["name"] for product in first_page.json() + second_page.json()]
    assert "cursor=" in first_page.links["next"]["url"]
    assert second_page.status_code == 200
    assert sorted(names) == sorted(product.json()["name"] for product in made)
    assert not_modified.status_code == 304
    assert (written.status_code, written.headers["etag"]) == (200, '"2"')
    assert stale.status_code == 412
    assert (original.status_code, replayed.status_code) == (201, 201)
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.content == original.content
    assert found.headers["x-total-count"] == "1"


def test_sigterm_drains_first_ready_503_while_everything_else_is_served(
    database_url: str, tmp_path: Path
) -> None:
    instance = Instance(database_url, tmp_path, shutdown_drain_s=DRAIN_S)
    instance.start()
    try:
        assert instance.process is not None
        instance.process.send_signal(signal.SIGTERM)
        with httpx.Client(base_url=instance.base_url, timeout=5) as client:
            deadline = time.monotonic() + 10
            while (ready := client.get("/health/ready")).status_code == 200:
                assert time.monotonic() < deadline, "/health/ready never turned 503"
                time.sleep(0.05)
            served = client.get("/products", params={"limit": 1})
        still_running = instance.process.poll() is None
        exit_code = instance.process.wait(timeout=30)  # by itself, once the drain is over
    finally:
        instance.stop()

    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.headers["retry-after"] == "1"
    assert served.status_code == 200
    assert still_running
    assert exit_code in (0, -signal.SIGTERM)
    assert "SHUTDOWN_DRAIN_S" in instance.log_path.read_text()


@dataclass
class Load:
    """What the clients saw: every status, every transport error, the ids of every 201."""

    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, client: httpx.Client, method: str, path: str, **arguments: Any) -> str | None:
        """One request; the `Location` of a 201."""
        try:
            response = client.request(method, path, **arguments)
        except httpx.TransportError as exc:
            with self.lock:
                self.errors.append(f"{method} {path}: {exc!r}")
            return None
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code == 201:
                self.created.append(response.json()["id"])
                return response.headers["location"]
        return None


def _client(base_url: str, number: int, load: Load, stop: threading.Event) -> None:
    """Create a product, read it back, read a page; again until told to stop. One keep-alive
    connection, as a real client keeps one."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        index = 0
        while not stop.is_set():
            index += 1
            body = {"name": f"Rolling {number}-{index}", "price": 1}
            if location := load.send(client, "POST", "/products", json=body):
                load.send(client, "GET", location)
            load.send(client, "GET", "/products", params={"limit": 5})


def _count_products(database_url: str, ids: list[int]) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            found: int = connection.execute(
                text("SELECT count(*) FROM products WHERE id = ANY(:ids)"), {"ids": ids}
            ).scalar_one()
            return found
    finally:
        engine.dispose()


def test_a_rolling_restart_under_load_loses_no_request(
    balancer: HAProxy, instances: dict[str, Instance], database_url: str
) -> None:
    """SIGTERM one instance, wait until it has exited, start it, wait until HAProxy has it
    back; then the next; twice over. Four clients create and read all along."""
    load, stop = Load(), threading.Event()
    clients = [
        threading.Thread(target=_client, args=(balancer.base_url, number, load, stop))
        for number in range(4)
    ]
    for thread in clients:
        thread.start()
    try:
        for _round in range(2):
            for name, instance in instances.items():
                instance.terminate()
                balancer.wait_until(name, "DOWN")
                instance.start()
                balancer.wait_until(name, "UP")
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=60)

    failed = {status: count for status, count in load.statuses.items() if status >= 300}
    assert (failed, load.errors) == ({}, [])
    assert load.statuses[201] > 0
    assert _count_products(database_url, load.created) == len(load.created)
