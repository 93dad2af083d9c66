"""Alembic owns the schema: the migrations build exactly what the models describe."""

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, event, inspect, text
from sqlalchemy.exc import IntegrityError

from config import Settings
from database.engine import build_engine
from models import Base
from models.base import exists_on
from tests.databases import ON_POSTGRES, downgrade, fresh_postgres_database, upgrade


@pytest.fixture
def empty_engine(tmp_path: Path) -> Iterator[Engine]:
    """An empty database of the kind this run tests: a SQLite file, or a fresh PostgreSQL one."""
    if ON_POSTGRES:
        with fresh_postgres_database("catalog_migrations") as url:
            engine = build_engine(url, Settings(database_url=url))
            yield engine
            engine.dispose()
    else:
        url = f"sqlite:///{tmp_path / 'migrations.db'}"
        engine = build_engine(url, Settings(database_url=url))
        yield engine
        engine.dispose()


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:

        def include_object(item: Any, *_: Any) -> bool:
            return exists_on(item, connection.dialect.name)

        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": include_object}
        )
        with warnings.catch_warnings():
            # SQLite's reflection cannot read an index on an expression (`lower(name)`) back,
            # so Alembic leaves it out of the comparison there; `_indexes` sees it.
            warnings.filterwarnings("ignore", ".*expression-based index")
            return list(compare_metadata(context, Base.metadata))


def _indexes(engine: Engine, table: str) -> set[str]:
    """The names of `table`'s indexes, those on expressions included (which SQLite's
    reflection skips)."""
    if engine.dialect.name == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :table"
    else:
        sql = "SELECT indexname FROM pg_indexes WHERE tablename = :table"
    with engine.connect() as connection:
        return set(connection.execute(text(sql), {"table": table}).scalars())


def test_upgrade_builds_exactly_the_models(empty_engine: Engine) -> None:
    with empty_engine.begin() as connection:
        upgrade(connection)

    assert _differences(empty_engine) == []
    indexes = {index["name"] for index in inspect(empty_engine).get_indexes("products")}
    assert {"ix_products_name", "ix_products_name_price", "ix_products_price_id"} <= indexes
    trigram = {"ix_products_name_trgm", "ix_products_description_trgm"}
    assert (trigram <= indexes) == ON_POSTGRES
    unique = inspect(empty_engine).get_unique_constraints("products")
    assert [(constraint["name"], constraint["column_names"]) for constraint in unique] == [
        ("uq_products_sku", ["sku"])
    ]


def test_downgrade_to_base_then_upgrade_again(empty_engine: Engine) -> None:
    with empty_engine.begin() as connection:
        upgrade(connection)
    with empty_engine.begin() as connection:
        downgrade(connection, "base")

    assert "products" not in inspect(empty_engine).get_table_names()

    with empty_engine.begin() as connection:
        upgrade(connection)

    assert _differences(empty_engine) == []


def _count_products(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM products")).scalar_one())


def test_0004_on_10000_products_upgrades_downgrades_and_upgrades_again(
    empty_engine: Engine,
) -> None:
    # 0004 (categories) alone: the revision before it already applied, products in the table.
    with empty_engine.begin() as connection:
        upgrade(connection, "0003")
        connection.execute(
            text("INSERT INTO products (sku, name, price, quantity) VALUES (:sku, :name, 9.5, 1)"),
            [{"sku": f"SKU-{i}", "name": f"Product {i}"} for i in range(10_000)],
        )
    statements: list[str] = []
    event.listen(empty_engine, "before_cursor_execute", _record_into(statements))

    with empty_engine.begin() as connection:
        upgrade(connection)

    assert _differences(empty_engine) == []
    assert _count_products(empty_engine) == 10_000
    with empty_engine.connect() as connection:
        named = "SELECT count(*) FROM products WHERE category_id IS NOT NULL"
        assert connection.execute(text(named)).scalar_one() == 0
    assert {"ix_products_category_id_id", "uq_categories_lower_name"} <= _indexes(
        empty_engine, "products"
    ) | _indexes(empty_engine, "categories")
    # The foreign key holds, and (SQLite's batch copy of the table) the checks are still there.
    with pytest.raises(IntegrityError), empty_engine.begin() as connection:
        connection.execute(text("UPDATE products SET category_id = 12345 WHERE id = 1"))
    checks = {check["name"] for check in inspect(empty_engine).get_check_constraints("products")}
    assert {"ck_products_price_positive", "ck_products_quantity_not_negative"} <= checks
    if ON_POSTGRES:
        # Added NOT VALID (no scan under the strong lock), then validated under a weak one.
        sql = " ".join(statements)
        assert "FOREIGN KEY (category_id) REFERENCES categories (id) NOT VALID" in sql
        assert "VALIDATE CONSTRAINT fk_products_category_id_categories" in sql
        with empty_engine.connect() as connection:
            validated = connection.execute(
                text("SELECT convalidated FROM pg_constraint WHERE conname = :name"),
                {"name": "fk_products_category_id_categories"},
            ).scalar_one()
        assert validated is True

    with empty_engine.begin() as connection:
        downgrade(connection, "0003")

    assert _count_products(empty_engine) == 10_000
    tables = inspect(empty_engine).get_table_names()
    assert "categories" not in tables
    assert "idempotency_keys" in tables  # 0003's table: only 0004 was undone
    columns = {column["name"] for column in inspect(empty_engine).get_columns("products")}
    assert "category_id" not in columns

    with empty_engine.begin() as connection:
        upgrade(connection)

    assert _differences(empty_engine) == []
    assert _count_products(empty_engine) == 10_000


def _record_into(statements: list[str]) -> Callable[..., None]:
    def record(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    return record
