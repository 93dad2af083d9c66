"""Step 2 of the guide: the declarative base every model inherits from."""

from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Stable constraint and index names, identical on SQLite and PostgreSQL and in migrations.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def exists_on(schema_item: Any, dialect_name: str) -> bool:
    """False for an item declared `.ddl_if(dialect=...)` for another database (for Alembic's
    autogenerate, which does not read `ddl_if`)."""
    condition = getattr(schema_item, "_ddl_if", None)
    dialect = getattr(condition, "dialect", None)
    return dialect is None or dialect == dialect_name
