"""Fixtures: the same tests run on SQLite (in memory) and on PostgreSQL (TEST_DATABASE_URL).

Each test runs inside one outer transaction that is rolled back afterwards; the sessions the app
gets (through `app.dependency_overrides`) join it with savepoints, so their commits are real
commits to the code under test and still leave nothing behind.
"""

import os
from collections.abc import Callable, Iterator
from typing import Any

# The app's own engine is never the tests' database (their sessions come through the
# overrides below); in memory, a test run leaves no catalog.db behind.
os.environ.setdefault("DATABASE_URL", "sqlite://")

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from config import Settings
from database.engine import build_engine
from dependencies.database import get_database_session, get_read_session
from main import app
from tests.databases import ON_POSTGRES, fresh_postgres_database, upgrade


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    if ON_POSTGRES:
        with fresh_postgres_database() as url:
            yield url
    else:
        yield "sqlite://"


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = build_engine(database_url, Settings(database_url=database_url))
    with engine.begin() as connection:
        upgrade(connection)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


def _joined_session(connection: Connection) -> Session:
    return Session(
        bind=connection,
        join_transaction_mode="create_savepoint",
        autoflush=False,
        expire_on_commit=False,
    )


@pytest.fixture
def db(connection: Connection) -> Iterator[Session]:
    """A session for the test's own setup and checks, in the test's transaction."""
    session = _joined_session(connection)
    yield session
    session.close()


@pytest.fixture
def client(connection: Connection) -> Iterator[TestClient]:
    def override() -> Iterator[Session]:
        # dependencies.database's generator, on a session joined to the test's transaction:
        # its commit releases a savepoint, and the test's rollback undoes everything.
        session = _joined_session(connection)
        try:
            yield session
            session.commit()
        except Exception:
            session.rollback()
            raise
        finally:
            session.close()

    app.dependency_overrides[get_database_session] = override
    app.dependency_overrides[get_read_session] = override
    try:
        with TestClient(app) as test_client:
            yield test_client
    finally:
        app.dependency_overrides.clear()


@pytest.fixture
def make_product(client: TestClient) -> Callable[..., dict[str, Any]]:
    """Create a product through the API; keyword arguments override the defaults."""
    counter = iter(range(1, 1_000_000))

    def make(**fields: Any) -> dict[str, Any]:
        body = {"name": f"Product {next(counter)}", "price": 9.99, "quantity": 5, **fields}
        response = client.post("/products", json=body)
        assert response.status_code == 201, response.text
        product: dict[str, Any] = response.json()
        return product

    return make


@pytest.fixture
def make_category(client: TestClient) -> Callable[..., dict[str, Any]]:
    """Create a category through the API; keyword arguments override the defaults."""
    counter = iter(range(1, 1_000_000))

    def make(**fields: Any) -> dict[str, Any]:
        response = client.post("/categories", json={"name": f"Category {next(counter)}", **fields})
        assert response.status_code == 201, response.text
        category: dict[str, Any] = response.json()
        return category

    return make


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if ON_POSTGRES:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: run with TEST_DATABASE_URL set")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)
