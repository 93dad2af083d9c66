"""A request's writes are one transaction, on the engines the service really runs with.

The request's session dependency (`dependencies.database.get_database_session`) commits when
the request succeeded and rolls back on any error; crud never commits. These tests run that
generator on engines built as `database.engine` builds the service's, on a database of their
own (they commit), and check what reaches the server.
"""

import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

import crud.products as crud
import dependencies.database
from config import Settings
from crud.errors import DuplicateSku, DuplicateSkuInBatch
from database.engine import build_engine
from models import Product
from tests.databases import ON_POSTGRES, fresh_postgres_database, upgrade

RequestSession = Callable[[], AbstractContextManager[Session]]


@pytest.fixture(scope="module")
def service_engine() -> Iterator[Engine]:
    """An engine built as the service builds its own, on a database of its own."""
    if not ON_POSTGRES:
        # A file, not memory: the checks read through a second connection.
        with tempfile.TemporaryDirectory() as directory:
            yield from _migrated(f"sqlite:///{directory}/transactions.db")
        return
    with fresh_postgres_database("catalog_transactions") as url:
        yield from _migrated(url)


def _migrated(url: str) -> Iterator[Engine]:
    settings = Settings(database_url=url)
    engine = build_engine(settings.database_url, settings)
    with engine.begin() as connection:
        upgrade(connection)
    yield engine
    engine.dispose()


@pytest.fixture
def request_session(service_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> RequestSession:
    """`get_database_session` as a request runs it, its session on `service_engine`."""
    factory = sessionmaker(bind=service_engine, autoflush=False, expire_on_commit=False)
    monkeypatch.setattr(dependencies.database, "SessionLocal", factory)
    return contextmanager(dependencies.database.get_database_session)


def _count(engine: Engine, name_like: str) -> int:
    with engine.connect() as observer:
        found = observer.scalar(
            select(func.count()).select_from(Product).where(Product.name.like(name_like))
        )
        return found or 0


def test_a_request_whose_second_write_fails_leaves_nothing(
    service_engine: Engine, request_session: RequestSession
) -> None:
    with request_session() as session:
        crud.create_product(session, values={"sku": "TWO-TAKEN", "name": "Taken", "price": 1})

    with pytest.raises(DuplicateSku), request_session() as session:
        crud.create_product(session, values={"name": "Two-first", "price": 1})
        # The second write breaks the sku's unique constraint.
        crud.create_product(session, values={"name": "Two-second", "price": 1, "sku": "TWO-TAKEN"})

    assert _count(service_engine, "Two-%") == 0


def test_a_write_is_visible_to_others_once_the_request_commits(
    service_engine: Engine, request_session: RequestSession
) -> None:
    with request_session() as session:
        crud.create_product(session, values={"name": "Pending-1", "price": 1})
        seen_before_commit = _count(service_engine, "Pending-%")
    seen_after_commit = _count(service_engine, "Pending-%")

    assert (seen_before_commit, seen_after_commit) == (0, 1)


def test_a_request_that_fails_after_its_write_leaves_nothing(
    service_engine: Engine, request_session: RequestSession
) -> None:
    with pytest.raises(RuntimeError), request_session() as session:
        crud.create_product(session, values={"name": "Undone-1", "price": 1})
        raise RuntimeError("the route failed after writing")

    assert _count(service_engine, "Undone-%") == 0


def test_a_bulk_create_with_the_last_sku_taken_creates_none(
    service_engine: Engine, request_session: RequestSession
) -> None:
    with request_session() as session:
        crud.create_product(session, values={"sku": "TAKEN-1", "name": "First", "price": 1})
    rows = [{"sku": f"BULK-{i}", "name": f"Bulk {i}", "price": 1} for i in range(999)]
    rows.append({"sku": "TAKEN-1", "name": "Bulk 999", "price": 1})

    with pytest.raises(DuplicateSkuInBatch) as refused, request_session() as session:
        crud.create_products(session, rows=rows)

    assert "Item 999: sku already exists" in str(refused.value)
    assert _count(service_engine, "Bulk %") == 0


def _transaction_status(session: Session) -> int:
    """libpq's view of the session's connection: idle, or inside a transaction."""
    dbapi_connection: Any = session.connection().connection.dbapi_connection
    return int(dbapi_connection.get_transaction_status())


@pytest.mark.postgres_only
def test_a_read_session_leaves_no_transaction_open_on_postgres(
    service_engine: Engine, request_session: RequestSession
) -> None:
    import psycopg2.extensions as pg

    with request_session() as session:
        created = crud.create_product(session, values={"name": "Read me", "price": 1})
    url = service_engine.url.render_as_string(hide_password=False)
    read_engine = build_engine(url, Settings(database_url=url), autocommit=True)

    with Session(read_engine) as session:
        crud.get_product(session, created.id)
        # No BEGIN was sent: the SELECT was its own transaction, a single round trip.
        after_read = _transaction_status(session)
    read_engine.dispose()
    with Session(service_engine) as session:
        crud.get_product(session, created.id)
        # A write session's connection: every statement in a transaction.
        after_write_session_read = _transaction_status(session)

    assert after_read == pg.TRANSACTION_STATUS_IDLE
    assert after_write_session_read == pg.TRANSACTION_STATUS_INTRANS
