"""Alembic owns the schema: the migrations build exactly what the models describe."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

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
        return list(compare_metadata(context, Base.metadata))


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
