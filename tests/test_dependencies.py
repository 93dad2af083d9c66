"""The session dependency: one session per request, closed always, rolled back on error."""

from collections.abc import AsyncGenerator, Iterator
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session, sessionmaker

import dependencies.database as database_dependency
from database.session import SessionLocal
from models import Product


@pytest.fixture
def test_session_factory(
    connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[Session]]:
    """Point the real dependency's `SessionLocal` at the test transaction; record its sessions."""
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
    created: list[Session] = []

    def session_local(**_options: object) -> Session:  # bind=: the test's connection instead
        session = factory()
        created.append(session)
        return session

    monkeypatch.setattr(database_dependency, "SessionLocal", session_local)
    yield created


def _request() -> Any:
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace()))


def _count(connection: Connection) -> int:
    return connection.scalar(select(func.count()).select_from(Product)) or 0


def _dependency() -> AsyncGenerator[Session, None]:
    return database_dependency.get_database_session(_request())  # type: ignore[return-value]


def test_each_call_yields_a_new_session_that_is_closed_afterwards(
    test_session_factory: list[Session],
) -> None:
    async def scenario() -> tuple[Session, Session]:
        first, second = _dependency(), _dependency()
        session_a, session_b = await anext(first), await anext(second)
        session_a.execute(select(1))
        assert session_a.in_transaction()
        for generator in (first, second):
            with pytest.raises(StopAsyncIteration):
                await anext(generator)
        return session_a, session_b

    session_a, session_b = anyio.run(scenario)

    assert session_a is not session_b
    assert not session_a.in_transaction()
    assert test_session_factory == [session_a, session_b]


def test_error_in_the_request_rolls_back_and_closes(
    test_session_factory: list[Session], connection: Connection
) -> None:
    async def scenario() -> Session:
        dependency = _dependency()
        session = await anext(dependency)
        session.add(Product(name="Half-done", price=1))
        session.flush()
        assert _count(connection) == 1
        with pytest.raises(RuntimeError):
            await dependency.athrow(RuntimeError("the route failed"))
        return session

    session = anyio.run(scenario)

    assert _count(connection) == 0
    assert not session.in_transaction()
    assert len(session.identity_map) == 0


def test_session_local_is_the_one_factory_bound_to_the_one_engine() -> None:
    from database.engine import engine

    assert SessionLocal.kw["bind"] is engine
    with SessionLocal() as session:
        assert session.get_bind() is engine
