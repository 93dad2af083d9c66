"""The service's PostgreSQL engine autocommits each statement; crud stays all-or-nothing on it."""

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

import crud.products as crud
from config import Settings
from crud.errors import DuplicateSkuInBatch
from database.engine import build_engine
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
