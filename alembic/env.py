"""Alembic environment: the target is `Base.metadata`, the URL the service's own setting."""

from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from config import get_settings
from database.engine import build_engine
from models import Base
from models.base import exists_on

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name)

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    def include_object(item: Any, _name: Any, _type: Any, _reflected: Any, _compare: Any) -> bool:
        return exists_on(item, connection.dialect.name)

    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        compare_type=True,
        # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=get_settings().database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # Tests hand in their own connection; otherwise connect with the service's settings.
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # A migration's statement may run long (an index on a big table): DB_STATEMENT_TIMEOUT_MS
    # is for requests. DB_LOCK_TIMEOUT_MS stays: a migration waiting for a table's lock would
    # queue every request on that table behind it; it fails instead, and can be run again.
    settings = get_settings().model_copy(update={"db_statement_timeout_ms": 0})
    engine = build_engine(settings.database_url, settings)
    try:
        connection = engine.connect()
    except DBAPIError as exc:
        # One line, not a traceback: the server is unreachable or the database is missing.
        reason = str(exc.orig).strip().splitlines()[0]
        where = engine.url.render_as_string(hide_password=True)
        raise SystemExit(f"catalog: cannot migrate {where}: {reason}") from None
    try:
        with connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
