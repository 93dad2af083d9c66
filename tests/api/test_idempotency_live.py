"""`Idempotency-Key` against a real server process: lost answers, racing retries, a SIGKILL.

A fresh database for this module (PostgreSQL when TEST_DATABASE_URL is set, otherwise a SQLite
file), committed data, real sockets and threads, as in tests/api/test_concurrency.py.
"""

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import create_engine, text

from config import normalize_database_url
from tests.server import (
    all_at_once,
    migrated_database,
    query,
    running_service,
    service_process,
)


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with migrated_database("idempotency", tmp_path_factory.mktemp("idempotency")) as url:
        yield url


@pytest.fixture(scope="module")
def service(database_url: str) -> Iterator[str]:
    with running_service(database_url, db_pool_size="10") as base_url:
        yield base_url


def _products_named(database_url: str, name: str) -> list[int]:
    rows = query(database_url, "SELECT id FROM products WHERE name = :name", name=name)
    return [row.id for row in rows]


def _encoded(body: Any) -> bytes:
    return json.dumps(body).encode()


def _keyed(service: str, path: str, body: Any, key: str) -> httpx.Response:
    """One keyed POST on its own connection, as a separate client would send it: a retry
    sends the same bytes (the fingerprint is of the body as sent)."""
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    with httpx.Client(base_url=service, timeout=30) as client:
        return client.post(path, content=_encoded(body), headers=headers)


def _retry_until_answered(service: str, path: str, body: Any, key: str) -> httpx.Response:
    """Retry as a client should: again after `Retry-After` while the first is in flight."""
    deadline = time.monotonic() + 20
    while True:
        response = _keyed(service, path, body, key)
        if response.status_code != 409 or "retry-after" not in response.headers:
            return response
        assert time.monotonic() < deadline, "still in flight after 20 s"
        time.sleep(0.05)


def _send_unread(service: str, path: str, body: bytes, key: str) -> socket.socket:
    """Send a whole POST on a raw socket, read nothing; the caller closes it."""
    address = urlsplit(service)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {address.hostname}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Idempotency-Key: {key}\r\n\r\n"
    ).encode() + body
    sock = socket.create_connection((address.hostname, address.port))
    sock.sendall(request)
    return sock


def test_a_lost_answer_is_replayed_byte_for_byte_and_nothing_is_created_twice(
    service: str, database_url: str
) -> None:
    name = f"Lost answer {uuid.uuid4().hex[:8]}"
    body = {"name": name, "price": 4.25, "quantity": 2}
    sock = _send_unread(service, "/products", _encoded(body), "lost-1")
    deadline = time.monotonic() + 10
    while not _products_named(database_url, name):  # carried out, the answer sent...
        assert time.monotonic() < deadline, "the first request never landed"
        time.sleep(0.02)
    sock.close()  # ... and never read

    retry = _retry_until_answered(service, "/products", body, "lost-1")
    again = _keyed(service, "/products", body, "lost-1")

    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    (product_id,) = _products_named(database_url, name)
    assert retry.json()["id"] == product_id
    assert retry.headers["location"] == f"/products/{product_id}"
    kept = query(database_url, "SELECT body, etag FROM idempotency_keys WHERE key = 'lost-1'")
    assert bytes(kept[0].body) == retry.content
    assert kept[0].etag == retry.headers["etag"]
    assert (again.status_code, again.content, again.headers["etag"]) == (
        201,
        retry.content,
        retry.headers["etag"],
    )


@pytest.mark.parametrize("round_", range(3))
def test_a_connection_closed_at_once_then_retried_creates_one_product(
    service: str, database_url: str, round_: int
) -> None:
    name = f"Closed at once {round_} {uuid.uuid4().hex[:8]}"
    body = {"name": name, "price": 1}
    key = f"closed-{uuid.uuid4()}"
    _send_unread(service, "/products", _encoded(body), key).close()

    retry = _retry_until_answered(service, "/products", body, key)

    assert retry.status_code == 201
    assert _products_named(database_url, name) == [retry.json()["id"]]


def test_20_racing_retries_under_one_key_create_one_product(
    service: str, database_url: str
) -> None:
    name = f"Racer {uuid.uuid4().hex[:8]}"
    body = {"name": name, "price": 2.5}
    key = f"race-{uuid.uuid4()}"

    answers = all_at_once(20, lambda _: _keyed(service, "/products", body, key))

    created = [answer for answer in answers if answer.status_code == 201]
    in_flight = [answer for answer in answers if answer.status_code == 409]
    assert len(created) + len(in_flight) == 20, [answer.status_code for answer in answers]
    assert created, "nobody got the answer"
    assert len({answer.content for answer in created}) == 1
    assert sum("idempotent-replayed" not in answer.headers for answer in created) <= 1
    for answer in in_flight:
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"] == "urn:catalog:problem:idempotency-key-in-use"
        assert int(answer.headers["retry-after"]) >= 1
    assert _products_named(database_url, name) == [created[0].json()["id"]]
    later = _keyed(service, "/products", body, key)
    assert (later.status_code, later.content) == (201, created[0].content)


def test_five_racing_stock_takes_under_one_key_take_one(service: str) -> None:
    with httpx.Client(base_url=service, timeout=30) as client:
        product = client.post("/products", json={"name": "Stocked", "price": 3, "quantity": 10})
    path = f"/products/{product.json()['id']}/stock"
    key = f"take-{uuid.uuid4()}"

    answers = all_at_once(5, lambda _: _keyed(service, path, {"delta": -1}, key))
    answers += [_keyed(service, path, {"delta": -1}, key) for _ in range(5)]

    assert {answer.status_code for answer in answers} <= {200, 409}
    taken = [answer for answer in answers if answer.status_code == 200]
    assert len({answer.content for answer in taken}) == 1
    assert taken[0].json()["quantity"] == 9
    with httpx.Client(base_url=service, timeout=30) as client:
        assert client.get(path.removesuffix("/stock")).json()["quantity"] == 9


@pytest.mark.postgres_only
def test_a_keyed_write_that_waits_out_its_lock_timeout_is_a_503_not_a_409(
    service: str, database_url: str
) -> None:
    # The key is free; the write's own lock wait is what gives up (DB_LOCK_TIMEOUT_MS).
    with httpx.Client(base_url=service, timeout=30) as client:
        product = client.post("/products", json={"name": "Locked", "price": 3, "quantity": 10})
    path = f"/products/{product.json()['id']}/stock"
    key = f"locked-{uuid.uuid4()}"
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as other:
            row = {"id": product.json()["id"]}
            other.execute(text("SELECT 1 FROM products WHERE id = :id FOR UPDATE"), row)
            refused = _keyed(service, path, {"delta": -1}, key)
            other.rollback()
    finally:
        engine.dispose()

    assert refused.status_code == 503, refused.text
    assert "retry-after" in refused.headers
    assert query(database_url, "SELECT 1 FROM idempotency_keys WHERE key = :key", key=key) == []
    retried = _keyed(service, path, {"delta": -1}, key)
    assert (retried.status_code, retried.json()["quantity"]) == (200, 9)


def test_bulk_retries_racing_create_the_batch_once(service: str, database_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    names = [f"Batch {tag} {i}" for i in range(50)]
    batch = [{"name": name, "price": 1} for name in names]

    answers = all_at_once(5, lambda _: _keyed(service, "/products/bulk", batch, f"bulk-{tag}"))

    assert {answer.status_code for answer in answers} <= {201, 409}
    assert all(len(_products_named(database_url, name)) == 1 for name in names)


def test_sigkill_while_keyed_creates_run_then_retries_create_each_product_once(
    database_url: str,
) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []  # every request, recorded before it is sent
    stop = threading.Event()

    def writer(base_url: str, number: int) -> None:
        with httpx.Client(base_url=base_url, timeout=10) as client:
            for index in range(10_000):
                if stop.is_set():
                    return
                key = f"kill-{number}-{index}-{uuid.uuid4().hex[:6]}"
                body = {"name": f"Killed {key}", "price": 3}
                sent.append((key, body))
                headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
                try:
                    client.post("/products", content=_encoded(body), headers=headers)
                except httpx.TransportError:
                    return  # the server is gone: this answer is lost

    with service_process(database_url) as service:
        threads = [threading.Thread(target=writer, args=(service.base_url, n)) for n in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        service.kill()
        service.process.wait(timeout=30)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert len(sent) > 10, "the stream never got going"

    with running_service(database_url) as base_url:
        retries = [_retry_until_answered(base_url, "/products", body, key) for key, body in sent]

    assert {retry.status_code for retry in retries} == {201}
    replayed = sum(retry.headers.get("idempotent-replayed") == "true" for retry in retries)
    assert replayed >= len(sent) - 4  # only the requests cut off mid-way are new
    for (_, body), retry in zip(sent, retries, strict=True):
        assert _products_named(database_url, body["name"]) == [retry.json()["id"]]
