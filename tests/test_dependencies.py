"""The session dependency: one session per request, closed always, rolled back on error."""

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session, sessionmaker

import dependencies.database as database_dependency
from database.session import SessionLocal
from dependencies.database import get_database_session
from models import Product


@pytest.fixture
def test_session_factory(
    connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[Session]]:
    """Point the real dependency's `SessionLocal` at the test transaction; record its sessions."""
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
    created: list[Session] = []

    def session_local() -> Session:
        session = factory()
        created.append(session)
        return session

    monkeypatch.setattr(database_dependency, "SessionLocal", session_local)
    yield created


def _count(connection: Connection) -> int:
    return connection.scalar(select(func.count()).select_from(Product)) or 0


def test_each_call_yields_a_new_session_that_is_committed_and_closed_afterwards(
    test_session_factory: list[Session], connection: Connection
) -> None:
    first, second = get_database_session(), get_database_session()
    session_a, session_b = next(first), next(second)
    session_a.add(Product(name="Kept", price=1))
    session_a.flush()
    for generator in (first, second):
        with pytest.raises(StopIteration):
            next(generator)

    assert session_a is not session_b
    assert not session_a.in_transaction()
    assert test_session_factory == [session_a, session_b]
    assert _count(connection) == 1  # committed (its savepoint released into the test's)


def test_error_in_the_request_rolls_back_and_closes(
    test_session_factory: list[Session], connection: Connection
) -> None:
    dependency = get_database_session()
    session = next(dependency)
    session.add(Product(name="Half-done", price=1))
    session.flush()
    assert _count(connection) == 1
    with pytest.raises(RuntimeError):
        dependency.throw(RuntimeError("the route failed"))

    assert _count(connection) == 0
    assert not session.in_transaction()
    assert len(session.identity_map) == 0


def test_session_local_is_the_one_factory_bound_to_the_one_engine() -> None:
    from database.engine import engine

    assert SessionLocal.kw["bind"] is engine
    with SessionLocal() as session:
        assert session.get_bind() is engine
