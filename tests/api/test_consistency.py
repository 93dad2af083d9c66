"""`Consistency-Token`: none without a replica (nothing changes), a 400 for a malformed one when
a replica is configured, and what `ReplicaMiddleware` does: which answers get a token, which
reads it answers again. Reads and writes against a real replica:
tests/scale/test_replica_reads.py."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

import api.replica
from api.replica import (
    FROM_PRIMARY,
    Replica,
    ReplicaFailed,
    ReplicaMiddleware,
)
from database.replica import ReplicaMonitor
from dependencies.database import get_read_session
from main import app

WRITE_POSITION = 0x16 << 32 | 0xB374D848


def test_without_a_replica_writes_carry_no_token_and_reads_ignore_one(
    client: TestClient, make_product: Any
) -> None:
    created = client.post("/products", json={"name": "No replica", "price": 1})
    product = make_product()

    read = client.get(f"/products/{product['id']}", headers={"Consistency-Token": "nonsense"})

    assert created.status_code == 201
    assert "consistency-token" not in created.headers
    assert read.status_code == 200
    assert "consistency-token" not in read.headers
    assert "replica" not in client.get("/health/ready").json()


@pytest.fixture
def replica_configured(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app as if DATABASE_READ_URL were set, with a monitor that knows of no sample yet
    (so every read it routes would go to the primary)."""
    engine = create_engine("sqlite://")
    monitor = ReplicaMonitor(engine, engine, max_lag_s=5, interval_s=0.5)
    app.dependency_overrides[get_read_session] = Replica(engine, monitor).read_session
    try:
        with TestClient(app) as test_client:
            yield test_client
    finally:
        app.dependency_overrides.clear()
    engine.dispose()


@pytest.mark.parametrize(
    "headers",
    [
        [("Consistency-Token", "yesterday")],
        [("Consistency-Token", "0/")],
        [("Consistency-Token", "1/123456789")],
        [("Consistency-Token", "0/1"), ("Consistency-Token", "0/2")],
    ],
)
@pytest.mark.parametrize("path", ["/products", "/products/1", "/categories"])
def test_a_malformed_token_is_a_400_problem(
    replica_configured: TestClient, path: str, headers: list[tuple[str, str]]
) -> None:
    response = replica_configured.get(path, headers=headers)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith("Consistency-Token must be sent once")


# The middleware, on an app of its own: which answers get a token.


def _token_app() -> FastAPI:
    probe = FastAPI()
    probe.add_middleware(ReplicaMiddleware)

    @probe.post("/written", status_code=201)
    def written() -> dict[str, str]:
        return {}

    @probe.delete("/deleted", status_code=204)
    def deleted() -> Response:
        return Response(status_code=204)

    @probe.post("/refused", status_code=201)
    def refused() -> Response:
        return Response(status_code=409)

    @probe.get("/read")
    def read() -> dict[str, str]:
        return {}

    return probe


@pytest.fixture
def positions(monkeypatch: pytest.MonkeyPatch) -> list[int | Exception]:
    """What the primary answers when asked for its WAL position, in turn; each ask is logged."""
    answers: list[int | Exception] = []

    def primary_wal_position() -> int:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(api.replica, "primary_wal_position", primary_wal_position)
    return answers


def test_a_2xx_write_carries_the_primary_position_after_it(
    positions: list[int | Exception],
) -> None:
    positions.extend([WRITE_POSITION, WRITE_POSITION + 1])
    with TestClient(_token_app()) as probe:
        created = probe.post("/written")
        deleted = probe.delete("/deleted")

    assert created.headers["consistency-token"] == "16/B374D848"
    assert deleted.headers["consistency-token"] == "16/B374D849"
    assert positions == []


def test_reads_and_refused_writes_carry_no_token_and_cost_no_round_trip(
    positions: list[int | Exception],
) -> None:
    with TestClient(_token_app()) as probe:
        refused = probe.post("/refused")
        read = probe.get("/read")
        missing = probe.post("/nowhere")

    for response in (refused, read, missing):
        assert "consistency-token" not in response.headers
    assert (refused.status_code, read.status_code, missing.status_code) == (409, 200, 404)


def test_a_write_whose_position_cannot_be_read_is_still_its_2xx(
    positions: list[int | Exception],
) -> None:
    positions.append(OperationalError("SELECT pg_current_wal_lsn()", {}, Exception("gone")))
    with TestClient(_token_app()) as probe:
        created = probe.post("/written")

    assert created.status_code == 201
    assert "consistency-token" not in created.headers


# The middleware, on an app of its own: which answers are given again.


def _fallback_app(runs: list[str]) -> FastAPI:
    probe = FastAPI()
    probe.add_middleware(ReplicaMiddleware)

    @probe.api_route("/read", methods=["GET", "HEAD"])
    def read(request: Request) -> Response:
        # The first run fails on "the replica" (as Replica.read_session raises); the second
        # reads from "the primary".
        on_primary = getattr(request.state, FROM_PRIMARY, False)
        runs.append("primary" if on_primary else "replica")
        if on_primary:
            return Response(b"{}", media_type="application/json")
        raise ReplicaFailed()

    @probe.get("/down")
    def down() -> Response:
        runs.append("primary")
        return Response(status_code=503)

    @probe.post("/read")
    def write(request: Request) -> Response:
        runs.append("primary")
        return Response(status_code=503)

    return probe


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_read_the_replica_failed_is_answered_again_from_the_primary(method: str) -> None:
    runs: list[str] = []
    with TestClient(_fallback_app(runs)) as probe:
        response = probe.request(method, "/read")

    assert response.status_code == 200
    assert runs == ["replica", "primary"]


def test_other_failures_are_answered_once() -> None:
    runs: list[str] = []
    with TestClient(_fallback_app(runs)) as probe:
        down = probe.get("/down")
        write = probe.post("/read")

    assert (down.status_code, write.status_code) == (503, 503)
    assert runs == ["primary", "primary"]
