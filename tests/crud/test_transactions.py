"""Writes are atomic by construction, on the engines the service really runs with.

`database.engine.build_engine` and `build_read_engine` are what `database.engine` builds the
service's `engine` and `read_engine` with; these tests build them the same way on a database of
their own (they commit) and check what reaches the server.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import crud.products as crud
from config import Settings
from crud import shared
from crud.errors import DuplicateSkuInBatch
from database.engine import build_engine, build_read_engine
from database.session import SessionLocal
from tests.databases import ON_POSTGRES, fresh_postgres_database, upgrade


@pytest.fixture(scope="module")
def service_engine() -> Iterator[Engine]:
    """An engine built as the service builds its own, on a database of its own."""
    if not ON_POSTGRES:
        # A file, not memory: the check below reads through a second connection.
        import tempfile

        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{directory}/transactions.db"
            yield from _migrated(url)
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


def _count(engine: Engine, name_like: str) -> int:
    with engine.connect() as observer:
        return (
            observer.scalar(
                select(func.count())
                .select_from(crud.PRODUCTS)
                .where(crud.PRODUCTS.c.name.like(name_like))
            )
            or 0
        )


def test_a_write_of_two_statements_whose_second_fails_leaves_nothing(
    service_engine: Engine,
) -> None:
    with SessionLocal(bind=service_engine) as session:
        crud.create_product(session, values={"sku": "TWO-TAKEN", "name": "Taken", "price": 1})

    with (
        SessionLocal(bind=service_engine) as session,
        pytest.raises(IntegrityError),
        shared.transaction(session, crud.PRODUCTS),
    ):
        session.execute(insert(crud.PRODUCTS), {"name": "Two-first", "price": 1})
        # The second statement breaks the sku's unique constraint.
        session.execute(
            insert(crud.PRODUCTS), {"name": "Two-second", "price": 1, "sku": "TWO-TAKEN"}
        )

    assert _count(service_engine, "Two-%") == 0


def test_a_write_is_not_visible_to_others_before_it_commits(service_engine: Engine) -> None:
    with SessionLocal(bind=service_engine) as session:
        with shared.transaction(session, crud.PRODUCTS):
            session.execute(insert(crud.PRODUCTS), {"name": "Pending-1", "price": 1})
            seen_before_commit = _count(service_engine, "Pending-%")
        seen_after_commit = _count(service_engine, "Pending-%")

    assert (seen_before_commit, seen_after_commit) == (0, 1)


def test_a_bulk_create_with_the_last_sku_taken_creates_none(service_engine: Engine) -> None:
    with SessionLocal(bind=service_engine) as session:
        crud.create_product(session, values={"sku": "TAKEN-1", "name": "First", "price": 1})
    rows = [{"sku": f"BULK-{i}", "name": f"Bulk {i}", "price": 1} for i in range(999)]
    rows.append({"sku": "TAKEN-1", "name": "Bulk 999", "price": 1})

    with (
        SessionLocal(bind=service_engine) as session,
        pytest.raises(DuplicateSkuInBatch) as refused,
    ):
        crud.create_products(session, rows=rows)

    assert "Item 999: sku already exists" in str(refused.value)
    assert _count(service_engine, "Bulk %") == 0


def _transaction_status(session: Session) -> int:
    """libpq's view of the session's connection: idle, or inside a transaction."""
    dbapi_connection: Any = session.connection().connection.dbapi_connection
    return int(dbapi_connection.get_transaction_status())


@pytest.mark.postgres_only
def test_a_read_session_leaves_no_transaction_open_on_postgres(service_engine: Engine) -> None:
    import psycopg2.extensions as pg

    with SessionLocal(bind=service_engine) as session:
        created = crud.create_product(session, values={"name": "Read me", "price": 1})

    read_engine = build_read_engine(
        service_engine,
        Settings(database_url=service_engine.url.render_as_string(hide_password=False)),
    )
    with SessionLocal(bind=read_engine) as session:
        session.execute(crud.RESOURCE.read, {shared.ROW_ID: created.id}).one()
        # No BEGIN was sent: the SELECT was its own transaction, a single round trip.
        after_read = _transaction_status(session)
    read_engine.dispose()
    with SessionLocal(bind=service_engine) as session:
        session.execute(crud.RESOURCE.read, {shared.ROW_ID: created.id}).one()
        # A write session's connection: every statement in a transaction.
        after_write_session_read = _transaction_status(session)

    assert after_read == pg.TRANSACTION_STATUS_IDLE
    assert after_write_session_read == pg.TRANSACTION_STATUS_INTRANS
