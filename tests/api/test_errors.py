"""Every layer's errors come out as RFC 9457 problem+json, with nothing internal in them."""

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

import crud.products
from config import Settings
from database.engine import build_engine
from dependencies.database import get_database_session, get_read_session
from main import app
from tests.databases import ON_POSTGRES, fresh_postgres_database

PROBLEM = "application/problem+json"


def test_unknown_path_is_404_problem(client: TestClient) -> None:
    response = client.get("/no/such/thing")

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "Nothing is at /no/such/thing",
        "instance": "/no/such/thing",
    }


def test_wrong_method_is_405_problem_with_allow(client: TestClient) -> None:
    response = client.put("/health")

    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["allow"] == "GET, HEAD"
    assert response.json()["status"] == 405


def test_malformed_json_is_400_problem(client: TestClient) -> None:
    response = client.post(
        "/products", content=b'{"name": ', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert "not valid JSON" in response.json()["detail"]


def test_validation_problem_lists_every_error(client: TestClient) -> None:
    response = client.post("/products", json={"name": "", "price": -1, "quantity": "x"})

    assert response.status_code == 422
    problem = response.json()
    assert [error["loc"] for error in problem["errors"]] == [
        ["body", "name"],
        ["body", "price"],
        ["body", "quantity"],
    ]
    assert all(set(error) == {"loc", "msg", "type"} for error in problem["errors"])


def test_unexpected_exception_is_500_problem_without_internals_and_logged(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("SELECT secret FROM products -- internal detail")

    monkeypatch.setattr(crud.products, "get_product", explode)
    quiet_client = TestClient(app, raise_server_exceptions=False)

    with caplog.at_level(logging.ERROR, logger="catalog.errors"):
        response = quiet_client.get("/products/1")

    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"] == "An unexpected error occurred"
    assert "SELECT" not in response.text
    assert "Traceback" not in response.text
    assert "internal detail" in caplog.text
    assert any(record.exc_info for record in caplog.records)


@pytest.fixture
def unreachable_database() -> Iterator[None]:
    """Sessions bound to a PostgreSQL port nobody listens on: a real connection failure."""
    engine = create_engine(
        "postgresql+psycopg2://postgres@127.0.0.1:1/catalog",
        connect_args={"connect_timeout": 1},
    )

    def override() -> Iterator[Session]:
        with Session(engine) as session:
            yield session

    app.dependency_overrides[get_database_session] = override
    app.dependency_overrides[get_read_session] = override
    yield
    app.dependency_overrides.clear()
    engine.dispose()


@pytest.mark.usefixtures("unreachable_database")
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/products", None),
        ("GET", "/products/1", None),
        ("POST", "/products", {"name": "Tee", "price": 1}),
        ("PATCH", "/products/1", {"price": 2}),
        ("DELETE", "/products/1", None),
        ("GET", "/health/ready", None),
    ],
)
def test_database_unreachable_is_503_problem_with_retry_after(
    method: str, path: str, body: dict[str, object] | None
) -> None:
    with TestClient(app) as test_client:
        response = test_client.request(method, path, json=body)

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert int(response.headers["retry-after"]) > 0
    assert "127.0.0.1" not in response.text
    assert "psycopg2" not in response.text


@pytest.mark.usefixtures("unreachable_database")
def test_health_stays_200_when_database_is_unreachable() -> None:
    with TestClient(app) as test_client:
        response = test_client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}


@pytest.fixture
def never_migrated(tmp_path: Path) -> Iterator[str]:
    """An empty database of this run's kind."""
    if ON_POSTGRES:
        with fresh_postgres_database("catalog_empty") as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'empty.db'}"


def test_a_database_that_was_never_migrated_is_503_saying_to_run_migrations(
    never_migrated: str, caplog: pytest.LogCaptureFixture
) -> None:
    empty = build_engine(never_migrated, Settings(database_url=never_migrated))

    def unmigrated() -> Iterator[Session]:
        with Session(empty) as session:
            yield session

    app.dependency_overrides[get_read_session] = unmigrated
    app.dependency_overrides[get_database_session] = unmigrated
    try:
        with TestClient(app) as probe:
            listing = probe.get("/products")
            created = probe.post("/products", json={"name": "Tee", "price": 1})
    finally:
        app.dependency_overrides.clear()
        empty.dispose()

    for response in (listing, created):
        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert "run migrations" in response.json()["detail"]
    logged = [r for r in caplog.records if r.name == "catalog.errors"]
    assert logged and all("\n" not in r.getMessage() for r in logged)  # one line per event


def test_a_json_patch_is_415_naming_the_formats_taken(client: TestClient) -> None:
    product = client.post("/products", json={"name": "Tee", "price": 1}).json()

    response = client.patch(
        f"/products/{product['id']}",
        content=b'[{"op": "replace", "path": "/price", "value": 2}]',
        headers={"Content-Type": "application/json-patch+json"},
    )
    merge = client.patch(
        f"/products/{product['id']}",
        content=b'{"price": 3}',
        headers={"Content-Type": "application/merge-patch+json"},
    )

    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM
    detail = response.json()["detail"]
    assert "application/json" in detail and "application/merge-patch+json" in detail
    assert merge.status_code == 200 and merge.json()["price"] == 3


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/products/{id}"),
        ("PUT", "/products/{id}"),
        ("PATCH", "/products/{id}"),
        ("DELETE", "/products/{id}"),
        ("POST", "/products/{id}/stock"),
        ("GET", "/categories/{id}"),
        ("PATCH", "/categories/{id}"),
        ("DELETE", "/categories/{id}"),
    ],
)
def test_an_id_of_5000_digits_is_a_422_naming_it_on_every_route(
    client: TestClient, method: str, path: str
) -> None:
    response = client.request(method, path.format(id="9" * 5000), json={})

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"][:1] == ["path"]
