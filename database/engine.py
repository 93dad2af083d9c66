"""Step 1 of the guide: the engines (and connection pools) of this process.

`engine` runs every session in a transaction, committed by the request's session dependency.
`read_engine` serves requests that only read: on PostgreSQL its connections autocommit, so a
read is one round trip (docs/design.md, "How a request meets the database"); SQLite shares
`engine`.
"""

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from config import Settings, get_settings
from database.synchronous_commit import ConfirmedCommitConnection
from database.timeouts import connect_host_by_host


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; SQLAlchemy's
    # documented recipe ("Serializable isolation / Savepoints / Transactional DDL") hands
    # transaction control back to SQLAlchemy.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")


def build_engine(database_url: str, settings: Settings, *, autocommit: bool = False) -> Engine:
    """An engine for `database_url` with the pool and driver options this service needs.

    The service, the replica monitor and the tests all build their engines here, so the tests
    run on the configuration the service runs with. `autocommit`: each statement commits by
    itself (PostgreSQL's `AUTOCOMMIT` isolation level), for sessions that only read.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        options: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        if url.database in (None, "", ":memory:"):
            # One shared connection, or every checkout would see a new, empty database.
            options["poolclass"] = StaticPool
        else:
            options["pool_timeout"] = settings.db_pool_timeout  # not SQLAlchemy's 30 s
        engine = create_engine(url, echo=settings.db_echo, **options)
        _configure_sqlite(engine)
        return engine
    engine = create_engine(
        url,
        echo=settings.db_echo,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=settings.db_pool_recycle,
        # The guide's pessimistic disconnect handling: a connection the server closed (restart,
        # failover, an idle timeout) is replaced before a request gets it.
        pool_pre_ping=True,
        isolation_level="AUTOCOMMIT" if autocommit else "READ COMMITTED",
        connect_args={
            "connect_timeout": settings.db_connect_timeout,
            "application_name": "catalog",
            # Notice a peer that vanished without closing the connection within ~30 s.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            # A commit the synchronous standby did not confirm is an error, not a success.
            "connection_factory": ConfirmedCommitConnection,
        },
    )
    if "," in str(url.query.get("host", "")):  # a libpq host list (config.py): failover
        event.listen(engine, "do_connect", connect_host_by_host)
    if not autocommit:
        # `SET LOCAL` as each write transaction begins, so the limits hold through PgBouncer
        # (docs/design.md, "Per-transaction settings"); database/timeouts.py bounds the reads.
        limits = (
            f"SET LOCAL statement_timeout = {settings.db_statement_timeout_ms};"
            f" SET LOCAL lock_timeout = {settings.db_lock_timeout_ms}"
        )

        @event.listens_for(engine, "begin")
        def _limit_every_write(connection: Any) -> None:
            connection.exec_driver_sql(limits)

    return engine


settings = get_settings()
engine = build_engine(settings.database_url, settings)
read_engine = (
    build_engine(settings.database_url, settings, autocommit=True)
    if engine.dialect.name == "postgresql"
    else engine
)
