"""The service's PostgreSQL engine autocommits each statement; crud stays all-or-nothing on it."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.orm import Session

import crud.products as crud
from config import Settings
from crud.errors import DuplicateSkuInBatch
from database.engine import build_engine
from schemas.product import BULK_MAX_ITEMS
from tests.databases import fresh_postgres_database, upgrade

pytestmark = pytest.mark.postgres_only


@pytest.fixture(scope="module")
def service_engine() -> Iterator[Engine]:
    """An engine built as the service builds its own, on a database of its own (it commits)."""
    with fresh_postgres_database("catalog_autocommit") as url:
        settings = Settings(database_url=url)
        engine = build_engine(settings.database_url, settings, autocommit=True)
        migrations = build_engine(settings.database_url, settings)
        with migrations.begin() as connection:
            upgrade(connection)
        migrations.dispose()
        yield engine
        engine.dispose()


def test_a_statement_is_committed_before_the_session_commits(service_engine: Engine) -> None:
    with Session(service_engine) as session, service_engine.connect() as observer:
        session.execute(text("INSERT INTO products (name, price) VALUES ('Seen at once', 1)"))
        # No COMMIT yet: another connection sees the row only if the statement committed.
        seen = observer.execute(
            text("SELECT count(*) FROM products WHERE name = 'Seen at once'")
        ).scalar_one()

    assert seen == 1


def test_a_bulk_create_of_1000_with_the_last_sku_taken_creates_none(
    service_engine: Engine,
) -> None:
    with Session(service_engine) as session:
        crud.create_product(session, values={"sku": "TAKEN-1", "name": "First", "price": 1})
    rows = [{"sku": f"BULK-{i}", "name": f"Bulk {i}", "price": 1} for i in range(999)]
    rows.append({"sku": "TAKEN-1", "name": "Bulk 999", "price": 1})

    with Session(service_engine) as session, pytest.raises(DuplicateSkuInBatch) as refused:
        crud.create_products(session, rows=rows)

    assert "Item 999: sku already exists" in str(refused.value)
    with Session(service_engine) as session:
        created = session.scalar(
            select(func.count())
            .select_from(crud.PRODUCTS)
            .where(crud.PRODUCTS.c.name.like("Bulk %"))
        )
    assert created == 0  # not the 999 before it either: one statement, one transaction


@pytest.fixture
def statements(service_engine: Engine) -> Iterator[list[str]]:
    """The SQL statements `service_engine` sends, in order."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    event.listen(service_engine, "before_cursor_execute", record)
    yield sent
    event.remove(service_engine, "before_cursor_execute", record)


def test_every_crud_write_and_read_is_one_statement(
    service_engine: Engine, statements: list[str]
) -> None:
    """With AUTOCOMMIT one statement is one transaction: a second one would not be atomic."""
    with Session(service_engine) as session:
        created = crud.create_product(session, values={"name": "One", "price": 1, "quantity": 5})
    operations: list[Callable[[Session], Any]] = [
        lambda s: crud.read_product(s, created.id),
        lambda s: crud.update_product(s, created.id, changes={"price": 2}),
        lambda s: crud.update_product(
            s, created.id, changes={"name": "Two"}, expected_versions={created.version + 1}
        ),
        lambda s: crud.change_stock(s, created.id, delta=-1),
        lambda s: crud.list_products(s, limit=10),
        lambda s: crud.delete_product(s, created.id),
    ]
    for operation in operations:
        statements.clear()
        with Session(service_engine) as session:
            operation(session)
        assert len(statements) == 1, statements


def test_a_bulk_create_of_the_most_items_with_every_field_is_one_statement(
    service_engine: Engine, statements: list[str]
) -> None:
    rows = [
        {"sku": f"FULL-{i}", "name": f"Full {i}", "description": "d", "price": 1, "quantity": 1}
        for i in range(BULK_MAX_ITEMS)
    ]

    with Session(service_engine) as session:
        created = crud.create_products(session, rows=rows)

    assert len(created) == BULK_MAX_ITEMS
    assert len(statements) == 1  # never split into pages: all or nothing
