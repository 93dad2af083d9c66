"""Faults, for real: the service as shipped (`python main.py`) against a private PostgreSQL
cluster that the tests stop, restart, and kill connections of. Nothing is mocked.

Bound on an outage answer: DB_POOL_TIMEOUT + DB_CONNECT_TIMEOUT (2 s + 2 s here) + 1.5 s slack.
"""

import json
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.postgres_cluster import PrivateCluster, private_cluster
from tests.server import create_until_stopped, migrate, service_process

# Once per `make test`: in the PostgreSQL run (the cluster is private either way).
pytestmark = pytest.mark.postgres_only

POOL_TIMEOUT, CONNECT_TIMEOUT = 2, 2
BOUND = POOL_TIMEOUT + CONNECT_TIMEOUT + 1.5
FAST_FAILING = {"db_pool_timeout": str(POOL_TIMEOUT), "db_connect_timeout": str(CONNECT_TIMEOUT)}
API_KEY = "fault-test-key-8c1d"


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    with private_cluster() as cluster:
        migrate(cluster.url)
        yield cluster


def _timed(
    client: httpx.Client, method: str, path: str, **kwargs: Any
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.request(method, path, **kwargs)
    return response, time.monotonic() - started


def _create(client: httpx.Client, name: str, **headers: str) -> dict[str, Any]:
    response = client.post("/products", json={"name": name, "price": 4.5}, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_database_stopped_is_503_within_the_bound_and_recovers_on_restart(
    cluster: PrivateCluster,
) -> None:
    with (
        service_process(cluster.url, **FAST_FAILING) as service,
        httpx.Client(base_url=service.base_url, timeout=30) as client,
    ):
        before = [_create(client, f"Kept {i}") for i in range(3)]
        cluster.stop()
        try:
            for method, path, body in [
                ("GET", f"/products/{before[0]['id']}", None),
                ("GET", "/products", None),
                ("POST", "/products", {"name": "Lost", "price": 1}),
                ("GET", "/health/ready", None),
            ]:
                response, elapsed = _timed(client, method, path, json=body)
                assert response.status_code == 503, f"{method} {path}: {response.status_code}"
                assert int(response.headers["retry-after"]) > 0
                assert response.headers["content-type"] == "application/problem+json"
                assert elapsed <= BOUND, f"{method} {path} took {elapsed:.2f} s > {BOUND} s"
            health, elapsed = _timed(client, "GET", "/health")
            assert health.status_code == 200
            assert elapsed < 1, f"/health took {elapsed:.2f} s"
        finally:
            cluster.start()
        restarted = time.monotonic()
        while client.get("/health/ready").status_code != 200:
            assert time.monotonic() - restarted < 10, "no recovery within 10 s"
            time.sleep(0.2)
        recovery = time.monotonic() - restarted
        for product in before:
            assert client.get(f"/products/{product['id']}").json() == product, (
                f"data changed after recovery ({recovery:.2f} s)"
            )


def test_terminated_backends_are_replaced_transparently(cluster: PrivateCluster) -> None:
    with (
        service_process(cluster.url, **FAST_FAILING) as service,
        httpx.Client(base_url=service.base_url, timeout=30) as client,
    ):
        product = _create(client, "Survivor")
        for _ in range(5):  # open pooled connections
            client.get("/products")
        admin = create_engine(cluster.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            killed = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'catalog'"
                )
            ).scalar_one()
        admin.dispose()
        assert killed >= 1

        statuses = [client.get(f"/products/{product['id']}").status_code for _ in range(10)]

        assert statuses == [200] * 10, f"after killing {killed} backends: {statuses}"


def test_pool_of_two_and_200_concurrent_requests_get_2xx_or_503_in_time(
    cluster: PrivateCluster,
) -> None:
    settings = {**FAST_FAILING, "db_pool_size": "2", "db_max_overflow": "0"}
    with service_process(cluster.url, **settings) as service:
        with httpx.Client(base_url=service.base_url, timeout=30) as client:
            client.post(
                "/products/bulk", json=[{"name": f"Load {i}", "price": 2} for i in range(500)]
            )
        barrier = threading.Barrier(200)

        def call(index: int) -> tuple[int, float]:
            with httpx.Client(base_url=service.base_url, timeout=30) as client:
                barrier.wait()
                if index % 4 == 0:
                    response, elapsed = _timed(
                        client, "POST", "/products", json={"name": f"Burst {index}", "price": 1}
                    )
                else:
                    response, elapsed = _timed(client, "GET", "/products", params={"limit": 500})
                return response.status_code, elapsed

        with ThreadPoolExecutor(max_workers=200) as pool:
            results = list(pool.map(call, range(200)))

    statuses = sorted({status for status, _ in results})
    slowest = max(elapsed for _, elapsed in results)
    answered_503 = sum(status == 503 for status, _ in results)
    assert set(statuses) <= {200, 201, 503}, f"statuses {statuses}"
    assert slowest <= BOUND, f"slowest answer {slowest:.2f} s > {BOUND} s ({answered_503} x 503)"


def test_statement_timeout_is_503(cluster: PrivateCluster) -> None:
    settings = {**FAST_FAILING, "db_statement_timeout_ms": "300"}
    with (
        service_process(cluster.url, **settings) as service,
        httpx.Client(base_url=service.base_url, timeout=30) as client,
    ):
        locker = create_engine(cluster.url)
        with locker.connect() as connection, connection.begin():
            connection.execute(text("LOCK TABLE products IN ACCESS EXCLUSIVE MODE"))
            response, elapsed = _timed(client, "GET", "/products")
        locker.dispose()

        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert elapsed < 2, f"took {elapsed:.2f} s with a 300 ms statement timeout"
        assert client.get("/products").status_code == 200


def test_sigterm_during_a_stream_of_creates_loses_no_acknowledged_write(
    cluster: PrivateCluster,
) -> None:
    acknowledged: list[dict[str, Any]] = []
    stop = threading.Event()

    with service_process(cluster.url) as service:
        threads = [
            threading.Thread(
                target=create_until_stopped, args=(service.base_url, n, stop, acknowledged)
            )
            for n in range(4)
        ]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        service.process.send_signal(signal.SIGTERM)
        exit_code = service.process.wait(timeout=30)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        output = service.output()

    # Graceful: the server lets in-flight requests finish, runs the lifespan's end, exits 0.
    assert exit_code == 0, output
    assert len(acknowledged) > 10, "the stream never got going"
    engine = create_engine(cluster.url)
    with engine.connect() as connection:
        stored: dict[int, str] = dict(
            connection.execute(
                text("SELECT id, name FROM products WHERE id = ANY(:ids)"),
                {"ids": [product["id"] for product in acknowledged]},
            ).all()
        )
    engine.dispose()
    missing = [p["id"] for p in acknowledged if stored.get(p["id"]) != p["name"]]
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged creates are missing"


def test_hostile_requests_get_the_contract_statuses(cluster: PrivateCluster) -> None:
    settings = {"api_keys": API_KEY, "cors_origins": "https://shop.example"}
    two_mib = b"x" * (2 * 1024 * 1024)
    with (
        service_process(cluster.url, **settings) as service,
        httpx.Client(base_url=service.base_url, timeout=30) as client,
    ):
        auth = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
        oversized_id = client.get("/health", headers={"X-Request-ID": "r" * 10_000})
        assert oversized_id.status_code == 200
        assert len(oversized_id.headers["x-request-id"]) == 32

        big = client.post("/products", content=two_mib, headers=auth)
        assert big.status_code == 413
        assert big.headers["content-type"] == "application/problem+json"

        chunked = client.post("/products", content=iter([two_mib[:1000], two_mib]), headers=auth)
        assert chunked.status_code == 413
        assert chunked.headers["connection"] == "close"

        body = json.dumps({"name": "Tee", "price": 2})
        missing_key = client.post(
            "/products", content=body, headers={"Content-Type": "application/json"}
        )
        assert missing_key.status_code == 401
        assert missing_key.headers["www-authenticate"].startswith("Bearer")
        wrong_key = client.post("/products", content=body, headers={**auth, "X-API-Key": "nope"})
        assert wrong_key.status_code == 401
        assert client.post("/products", content=body, headers=auth).status_code == 201

        preflight = client.options(
            "/products",
            headers={
                "Origin": "https://shop.example",
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "If-Match, X-API-Key, Content-Type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
        assert "access-control-allow-credentials" not in preflight.headers
        read = client.get("/products", headers={"Origin": "https://shop.example"})
        exposed = {
            h.strip().lower() for h in read.headers["access-control-expose-headers"].split(",")
        }
        assert {"etag", "location", "link", "x-total-count", "x-request-id"} <= exposed
        foreign = client.get("/products", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in foreign.headers


# A frozen database: every statement the service sends is bounded by its own clock.
FROZEN_STATEMENT_MS = 1000
# DB_STATEMENT_TIMEOUT_MS + its grace for a write (database/timeouts.py) + DB_POOL_TIMEOUT +
# DB_CONNECT_TIMEOUT, plus a few seconds of slack for a busy machine.
FROZEN_BOUND = FROZEN_STATEMENT_MS / 1000 + 2 + POOL_TIMEOUT + CONNECT_TIMEOUT + 3


def test_a_frozen_database_is_503_within_the_bound_and_keyed_writes_land_once(
    cluster: PrivateCluster,
) -> None:
    settings = {**FAST_FAILING, "db_statement_timeout_ms": str(FROZEN_STATEMENT_MS)}
    with (
        service_process(cluster.url, **settings) as service,
        httpx.Client(base_url=service.base_url, timeout=60) as client,
    ):
        stocked = _create(client, "Stocked")
        client.post(f"/products/{stocked['id']}/stock", json={"delta": 100}).raise_for_status()
        writes = [(f"frozen-{i}", f"Frozen {i}") for i in range(6)]
        takes = [f"take-{i}" for i in range(4)]

        def create(key: str, name: str) -> tuple[httpx.Response, float]:
            headers = {"Idempotency-Key": key}
            return _timed(
                client, "POST", "/products", json={"name": name, "price": 3}, headers=headers
            )

        def take(key: str) -> tuple[httpx.Response, float]:
            path = f"/products/{stocked['id']}/stock"
            return _timed(
                client, "POST", path, json={"delta": -1}, headers={"Idempotency-Key": key}
            )

        cluster.signal_every_process(signal.SIGSTOP)
        try:
            with ThreadPoolExecutor(max_workers=16) as pool:
                answers = [pool.submit(create, key, name) for key, name in writes]
                answers += [pool.submit(take, key) for key in takes]
                answers += [pool.submit(_timed, client, "GET", "/products") for _ in range(4)]
                answers.append(pool.submit(_timed, client, "GET", "/health/ready"))
                time.sleep(1)
                health, health_elapsed = _timed(client, "GET", "/health")
                frozen = [answer.result(timeout=2 * FROZEN_BOUND) for answer in answers]
            # Held a while longer than any answer took: the cluster did not thaw meanwhile.
            time.sleep(1)
        finally:
            cluster.signal_every_process(signal.SIGCONT)

        assert health.status_code == 200 and health_elapsed < 1
        for response, elapsed in frozen:
            assert response.status_code == 503, response.text
            assert int(response.headers["retry-after"]) > 0
            assert response.headers["content-type"] == "application/problem+json"
            assert elapsed <= FROZEN_BOUND, f"answered after {elapsed:.2f} s"

        thawed = time.monotonic()
        while client.get("/health/ready").status_code != 200:
            assert time.monotonic() - thawed < 15, "not ready 15 s after the database thawed"
            time.sleep(0.2)
        # The clients retry under their keys: every write is done, and done once.
        for key, name in writes:
            assert create(key, name)[0].status_code == 201
        for key in takes:
            assert take(key)[0].status_code == 200
        for key, name in writes:  # a second retry replays
            replay = create(key, name)[0]
            assert replay.headers["idempotent-replayed"] == "true"

    engine = create_engine(cluster.url)
    with engine.connect() as connection:
        names = connection.execute(
            text("SELECT name, count(*) FROM products WHERE name LIKE 'Frozen %' GROUP BY name")
        ).all()
        quantity = connection.execute(
            text("SELECT quantity FROM products WHERE id = :id"), {"id": stocked["id"]}
        ).scalar_one()
    engine.dispose()
    assert sorted(names) == sorted((name, 1) for _key, name in writes)
    assert quantity == 100 - len(takes)
