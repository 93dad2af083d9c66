"""Reads from a streaming replica (`DATABASE_READ_URL`), as the contract words them, for real: a
private primary, a replica that applies every commit 2 s late, and three service instances
as uvicorn processes: two that allow reads 5 s stale (`DB_REPLICA_MAX_LAG_S`), one that
allows 1 s.

- a write's answer carries a `Consistency-Token`; a read sending it back on *another*
  instance sees the write at once, while the replica is still 2 s behind;
- without a token a read may be stale, but by no more than DB_REPLICA_MAX_LAG_S;
- with the replica stopped, every read is still a 2xx, and `/health/ready` says so.
"""

import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from database.replica import parse_lsn
from tests.scale.replication import Node, Replication, replication
from tests.server import Service, migrate, service_process

APPLY_DELAY_S = 2
# Old enough that the strict instance (1 s) must not serve it stale, young enough that the
# replica (2 s behind) does not have it yet.
READ_AFTER_S = 1.3
LENIENT_LAG_S, STRICT_LAG_S = 5, 1


@dataclass
class Setup:
    replication: Replication
    replica: Node
    a: httpx.Client  # DB_REPLICA_MAX_LAG_S=5
    b: httpx.Client  # DB_REPLICA_MAX_LAG_S=5, another process
    strict: httpx.Client  # DB_REPLICA_MAX_LAG_S=1


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    with replication() as cluster, ExitStack() as stack:
        migrate(cluster.primary.url)
        replica = cluster.replica("delayed", apply_delay=f"{APPLY_DELAY_S}s")

        def instance(max_lag_s: int) -> httpx.Client:
            service: Service = stack.enter_context(
                service_process(
                    cluster.primary.url,
                    database_read_url=replica.url,
                    db_replica_max_lag_s=str(max_lag_s),
                    db_replica_check_interval_s="0.25",
                    db_connect_timeout="2",
                    db_pool_timeout="2",
                )
            )
            return stack.enter_context(httpx.Client(base_url=service.base_url, timeout=30))

        yield Setup(
            cluster,
            replica,
            instance(LENIENT_LAG_S),
            instance(LENIENT_LAG_S),
            instance(STRICT_LAG_S),
        )


def _create(client: httpx.Client, name: str, **headers: str) -> httpx.Response:
    response = client.post("/products", json={"name": name, "price": 3.5}, headers=headers)
    assert response.status_code == 201, response.text
    return response


def _token(response: httpx.Response) -> str:
    token = response.headers["consistency-token"]
    assert parse_lsn(token) is not None, token
    return token


def _replica_state(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/health/ready")
    assert response.status_code == 200, response.text
    replica: dict[str, Any] = response.json()["replica"]
    return replica


def test_a_read_with_the_token_sees_the_write_on_another_instance_while_the_replica_lags(
    setup: Setup,
) -> None:
    written = _create(setup.a, "Read your writes")
    product, token = written.json(), _token(written)

    with_token = setup.b.get(f"/products/{product['id']}", headers={"Consistency-Token": token})
    listed = setup.b.get(
        "/products", params={"q": "Read your writes"}, headers={"Consistency-Token": token}
    )
    without_token = setup.b.get(f"/products/{product['id']}")

    assert with_token.status_code == 200, with_token.text
    assert with_token.json() == product
    assert listed.status_code == 200
    assert [found["id"] for found in listed.json()] == [product["id"]]
    # The same read without the token was served by the replica, which is 2 s behind: it
    # does not have the product yet (and may not: 5 s stale are allowed here).
    assert without_token.status_code == 404


def test_an_idempotent_replay_carries_a_token_that_sees_the_write(setup: Setup) -> None:
    key = {"Idempotency-Key": "replica-replay-1"}
    first = _create(setup.a, "Replayed", **key)
    replay = _create(setup.b, "Replayed", **key)

    assert replay.headers["idempotent-replayed"] == "true"
    replay_token = parse_lsn(_token(replay))
    first_token = parse_lsn(_token(first))
    assert replay_token is not None and first_token is not None
    assert replay_token >= first_token
    read = setup.b.get(
        f"/products/{first.json()['id']}", headers={"Consistency-Token": _token(replay)}
    )
    assert read.status_code == 200


def test_a_read_without_a_token_is_stale_by_at_most_the_max_lag(setup: Setup) -> None:
    written = _create(setup.a, "Stale within bounds").json()
    time.sleep(READ_AFTER_S)

    lenient = setup.b.get(f"/products/{written['id']}")
    strict = setup.strict.get(f"/products/{written['id']}")
    strict_replica, lenient_replica = _replica_state(setup.strict), _replica_state(setup.b)

    # 1.3 s stale is within 5 s: the lagging replica may answer, and does, without it.
    assert lenient.status_code == 404
    # It is not within 1 s: that instance reads from the primary, which has it.
    assert strict.status_code == 200, strict.text
    assert strict.json() == written
    assert strict_replica["state"] == "lagging"
    assert lenient_replica["state"] == "streaming"
    assert 0 <= lenient_replica["lag_s"] <= LENIENT_LAG_S


def test_a_malformed_token_is_a_400(setup: Setup) -> None:
    response = setup.b.get("/products", headers={"Consistency-Token": "yesterday"})

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "Consistency-Token" in response.json()["detail"]


# DB_STATEMENT_TIMEOUT_MS (5 s, a read's own bound: database/timeouts.py) + DB_POOL_TIMEOUT +
# DB_CONNECT_TIMEOUT (2 s each here) + a few seconds for a busy machine.
FROZEN_READ_BOUND = 5 + 2 + 2 + 3


def test_reads_are_2xx_within_the_bound_with_the_replica_frozen(setup: Setup) -> None:
    written = _create(setup.a, "Replica frozen")
    product = written.json()
    deadline = time.monotonic() + 10
    while setup.a.get(f"/products/{product['id']}").status_code != 200:
        assert time.monotonic() < deadline, "the replica never caught up"
        time.sleep(0.2)

    def read(path: str) -> tuple[int, float]:
        started = time.monotonic()
        status = setup.a.get(path).status_code
        return status, time.monotonic() - started

    # Its kernel still accepts every byte, nothing answers (a paused machine).
    setup.replica.signal_every_process(signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(max_workers=6) as readers:
            paths = [f"/products/{product['id']}", "/products"] * 3
            answers = [readers.submit(read, path) for path in paths]
            frozen = [answer.result(timeout=2 * FROZEN_READ_BOUND) for answer in answers]
        ready = setup.a.get("/health/ready")
    finally:
        setup.replica.signal_every_process(signal.SIGCONT)

    assert {status for status, _ in frozen} == {200}, frozen
    assert max(elapsed for _, elapsed in frozen) <= FROZEN_READ_BOUND, frozen
    assert ready.status_code == 200  # the primary answers: the instance serves
    setup.replication.wait_for("delayed", "streaming")


def test_reads_are_2xx_and_the_service_ready_with_the_replica_stopped(setup: Setup) -> None:
    written = _create(setup.a, "Replica down")
    product, token = written.json(), _token(written)
    clients = {"a": setup.a, "b": setup.b, "strict": setup.strict}
    # Every instance reads it from the replica, once the replica has it: their pools hold
    # connections to the replica.
    deadline = time.monotonic() + 10
    for client in clients.values():
        while client.get(f"/products/{product['id']}").status_code != 200:
            assert time.monotonic() < deadline, "the replica never caught up"
            time.sleep(0.2)

    # Readers in flight on every instance while the replica crashes: some of their statements
    # are cut off on the replica, and answered again from the primary.
    stop_reading, statuses = threading.Event(), Counter[int]()

    def read_on(client: httpx.Client) -> None:
        while not stop_reading.is_set():
            statuses[client.get(f"/products/{product['id']}").status_code] += 1

    with ThreadPoolExecutor(max_workers=2 * len(clients)) as readers:
        running = [readers.submit(read_on, client) for client in clients.values() for _ in "12"]
        time.sleep(0.5)
        setup.replica.stop("immediate")
        time.sleep(1.5)
        stop_reading.set()
        for reader in running:
            reader.result()
    try:
        assert set(statuses) == {200}, statuses
        for name, client in clients.items():
            for headers in ({}, {"Consistency-Token": token}):
                one = client.get(f"/products/{product['id']}", headers=headers)
                listing = client.get("/products", headers=headers)
                assert one.status_code == 200, f"{name} {headers}: {one.status_code} {one.text}"
                assert one.json() == product
                assert listing.status_code == 200, f"{name} {headers}: {listing.text}"
            deadline = time.monotonic() + 5
            while (state := _replica_state(client))["state"] != "down":
                assert time.monotonic() < deadline, f"{name} still reports {state}"
                time.sleep(0.1)
        # Writes go on, with tokens that a read on another instance honours (from the primary).
        later = _create(setup.a, "Written while the replica is down")
        seen = setup.b.get(
            f"/products/{later.json()['id']}", headers={"Consistency-Token": _token(later)}
        )
        assert seen.status_code == 200
    finally:
        setup.replica.start()
