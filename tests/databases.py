"""Test databases: which one this run uses, and throw-away PostgreSQL databases."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from config import PROJECT_DIR, normalize_database_url

# Unset: SQLite in memory. Set (e.g. by `make test-postgres`): that PostgreSQL database,
# dropped and re-created for the run.
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
ON_POSTGRES = bool(TEST_DATABASE_URL)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def alembic_config(connection: Connection) -> Config:
    config = Config(str(PROJECT_DIR / "alembic.ini"))
    config.attributes["connection"] = connection
    config.attributes["configure_logging"] = False
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    command.upgrade(alembic_config(connection), revision)


def downgrade(connection: Connection, revision: str) -> None:
    command.downgrade(alembic_config(connection), revision)


def _unreachable(reason: str) -> None:
    message = f"PostgreSQL at {TEST_DATABASE_URL} is unreachable: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: PostgreSQL is required, never skipped)")
    pytest.skip(message)


@contextmanager
def fresh_postgres_database(prefix: str = "catalog_test") -> Iterator[str]:
    """Create an empty database beside TEST_DATABASE_URL's, yield its URL, drop it after."""
    assert TEST_DATABASE_URL
    base = make_url(normalize_database_url(TEST_DATABASE_URL))
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        _unreachable(str(exc.orig).strip())
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
