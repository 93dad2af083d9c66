"""Stateless instances behind HAProxy (deploy/haproxy.cfg): any instance answers any request,
and a rolling restart under load loses nothing.

A private PostgreSQL cluster, two service instances as real uvicorn processes, HAProxy in
front of them; everything stopped, and the cluster's data removed, at the end.
"""

import threading
import time
import logging
logging.getLogger("httpx").setLevel(logging.WARNING)
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


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with private_cluster() as cluster:
        admin = create_engine(cluster.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("CREATE DATABASE catalog"))
        admin.dispose()
        url = make_url(cluster.url).set(database="catalog").render_as_string(False)
        migrate(url)
        yield url


@pytest.fixture(scope="module")
def instances(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Instance]]:
    logs = tmp_path_factory.mktemp("instances")
    started = {
        name: Instance(database_url, logs, db_pool_size="5", shutdown_drain_s="3") for name in NAMES
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


@dataclass
class Load:
    """What the clients saw: every status, every transport error, the ids of every 201."""

    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, response: httpx.Response | None, error: Exception | None = None) -> None:
        with self.lock:
            if error is not None:
                self.errors.append(repr(error))
            else:
                assert response is not None
                self.statuses[response.status_code] += 1
                if response.status_code == 201:
                    self.created.append(response.json()["id"])


def _client(base_url: str, number: int, load: Load, stop: threading.Event) -> None:
    """Create a product, read it back, read a page; again until told to stop. One keep-alive
    connection, as a real client keeps one."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        index = 0
        while not stop.is_set():
            index += 1
            calls: list[tuple[str, str, dict[str, Any]]] = [
                ("POST", "/products", {"json": {"name": f"Rolling {number}-{index}", "price": 1}}),
                ("GET", "/products", {"params": {"limit": 5}}),
            ]
            for method, path, arguments in calls:
                try:
                    response = client.request(method, path, **arguments)
                except httpx.TransportError as exc:
                    load.record(None, exc)
                    continue
                load.record(response)
                if response.status_code == 201:
                    try:
                        load.record(client.get(response.headers["location"]))
                    except httpx.TransportError as exc:
                        load.record(None, exc)


def test_a_rolling_restart_under_load_loses_no_request(
    balancer: HAProxy, instances: dict[str, Instance], database_url: str
) -> None:
    load, stop = Load(), threading.Event()
    clients = [
        threading.Thread(target=_client, args=(balancer.base_url, number, load, stop))
        for number in range(4)
    ]
    for thread in clients:
        thread.start()
    try:
        for _round in range(int(__import__("os").environ.get("ROUNDS", "2"))):
            for name, instance in instances.items():
                t0 = time.monotonic()
                instance.terminate()
                t1 = time.monotonic()
                instance.start()
                t2 = time.monotonic()
                balancer.wait_until(name, "UP")
                print("restart", name, round(t1 - t0, 2), round(t2 - t1, 2), round(time.monotonic() - t2, 2), dict(load.statuses), len(load.errors))
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=60)

    failures = {status: n for status, n in load.statuses.items() if not 200 <= status < 300}
    interesting = [line for line in balancer.output().splitlines() if " ---- " not in line]
    print("ERRORS", load.errors)
    print("\n".join(interesting))
    assert (failures, load.errors[:5]) == ({}, [])
    assert load.created, "no create was answered"
    assert sum(load.statuses.values()) > 100
    assert _count_products(database_url, load.created) == len(load.created)
