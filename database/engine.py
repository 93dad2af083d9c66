"""Step 1 of the guide: the one engine (and connection pool) of this process.

`engine` runs every session in a transaction: a write request is one transaction, however
many statements it makes, and commits before its answer is built (`crud`). `read_engine`
serves the sessions of requests that only read (`GET`, `HEAD`): on PostgreSQL an engine and
pool of its own whose connections autocommit (`build_read_engine`). `replica_engine`, when
DATABASE_READ_URL names a streaming replica, is the same for it: reads that it may serve go
there (`database.replica`, `dependencies.database.get_read_session`). On PostgreSQL a commit
that the synchronous standby did not confirm fails (`ConfirmedCommitConnection`).
"""

import functools
import select
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg2
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from psycopg2.extensions import connection as Psycopg2Connection
from sqlalchemy import ClauseElement, Connection, Dialect, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import StaticPool

from config import Settings, get_settings


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; SQLAlchemy's
    # documented recipe hands transaction control back to SQLAlchemy.
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


def _readable(dbapi_connection: Any) -> bool:
    poller = select.poll()  # not select.select(): that fails on descriptors above 1023
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _hung_up(dbapi_connection: Any) -> bool:
    """Whether the server has spoken first on this idle psycopg2 connection: no round trip.

    An idle connection has nothing to read. The server speaks first to hang up — a FATAL
    "terminating connection" on shutdown, restart or `pg_terminate_backend`, then end of file —
    or, rarely, with a notice (this service never LISTENs). Either way the connection is
    replaced: a spare reconnect in the rare case is cheaper than telling the two apart.
    """
    return bool(dbapi_connection.closed) or _readable(dbapi_connection)


def _replace_hung_up_connections(engine: Engine) -> None:
    """Pessimistic disconnect handling without `pool_pre_ping`'s `SELECT 1` round trip.

    SQLAlchemy's documented checkout-event recipe: raising `DisconnectionError` makes the pool
    replace the connection with a new one before the request gets it. The check is a
    non-blocking poll of the socket, where pre-ping adds a round trip to every request
    (bench/README.md). Like pre-ping, it cannot see a server that dies after the check: that
    request gets a 503, and SQLAlchemy invalidates the pool.
    """

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if _hung_up(dbapi_connection):
            raise DisconnectionError("the server closed this pooled connection")


# PostgreSQL's words (syncrep.c) when a commit's wait for the synchronous standby is cancelled.
_COMMITTED_ON_THE_PRIMARY_ALONE = "canceling wait for synchronous replication"


class StandbyUnconfirmed(psycopg2.OperationalError):
    """A commit PostgreSQL kept on the primary alone: its synchronous standby never confirmed
    it. An `OperationalError`, so SQLAlchemy wraps it as one and the client gets a 503."""


class ConfirmedCommitConnection(Psycopg2Connection):
    """A psycopg2 connection whose `commit()` fails unless the synchronous standby has it.

    While the synchronous standby is down, a `COMMIT` waits for it (`DB_STATEMENT_TIMEOUT_MS`
    does not bound that wait). When the wait is cancelled (`pg_cancel_backend`, a pooler's
    query timeout), PostgreSQL keeps the commit on the primary alone and reports success with
    only a WARNING: answered 2xx, the write would be lost if the primary then failed and the
    standby were promoted. Raising here turns it into a 503, whose client retries it (with its
    `Idempotency-Key`). Every commit of the service's sessions comes through here, so no crud
    function can miss it. The notices are judged per commit and then dropped: the service
    reads no others, and none may leak into the next transaction on this pooled connection.
    The match is on PostgreSQL's English message (the server's `lc_messages`).
    """

    def commit(self) -> None:
        self.notices.clear()
        super().commit()
        unconfirmed = any(_COMMITTED_ON_THE_PRIMARY_ALONE in notice for notice in self.notices)
        self.notices.clear()
        if unconfirmed:
            raise StandbyUnconfirmed(
                "the synchronous standby did not confirm this commit; it is on the primary only"
            )


def _postgres_connect_args(settings: Settings) -> dict[str, Any]:
    args: dict[str, Any] = {
        "connect_timeout": settings.db_connect_timeout,
        "application_name": "catalog",
        # Notice a peer that vanished without closing the connection within ~30 s.
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }
    return args


# Where `sent_with_next_statement` leaves statements for the connection's next message.
_SENT_NEXT = "catalog.sent_with_next_statement"


@contextmanager
def sent_with_next_statement(
    connection: Connection, statements: Sequence[ClauseElement], parameters: dict[str, Any]
) -> Iterator[None]:
    """Within the block, `statements` run just before the connection's next statement, in the
    same message to PostgreSQL: no round trip of their own. PostgreSQL runs a message's
    statements in order and stops at the first error: if one of these fails, the next
    statement does not run, the error is that statement's, and the transaction is to be rolled
    back.

    Only for PostgreSQL through psycopg2 (one message may hold several statements). Unsent,
    they are dropped when the block ends, or when the connection goes back to the pool. A name
    their parameters share with the next statement's is one parameter: with another value
    there, one would take the other's, so that statement is refused (ValueError) unsent.
    """
    info = connection.info
    sql = "".join(f"{_sql(statement, connection.dialect)}; " for statement in statements)
    info[_SENT_NEXT] = (sql, parameters)
    try:
        yield
    finally:
        info.pop(_SENT_NEXT, None)


@functools.lru_cache(maxsize=16)
def _sql(statement: ClauseElement, dialect: Dialect) -> str:
    """The SQL text psycopg2 is sent for `statement`, placeholders included: compiled once."""
    return str(statement.compile(dialect=dialect))


def _set_in_every_transaction(engine: Engine, settings: Settings) -> None:
    """The time zone and the timeouts, `SET LOCAL` in every transaction, without a round trip.

    `SET LOCAL` lasts until its transaction ends, so these hold through a pooler in transaction
    mode (PgBouncer), where each transaction may run on another server connection; a session
    setting (`SET`, the `options` startup parameter, which PgBouncer refuses) would not follow
    the client, and would stay on a server connection that other clients get. The `SET LOCAL`s
    travel in the same message as the transaction's first statement, which PostgreSQL runs as
    one transaction with it: a write's first statement after psycopg2's `BEGIN`, and every
    statement of a read in `AUTOCOMMIT` (each is a transaction of its own). Statements left
    by `sent_with_next_statement` travel with the next statement, just before it (after the
    `SET LOCAL`s).

    - `timezone`, always: timestamptz values then arrive as UTC datetimes, which the response
      writes as RFC 3339 "...Z" without converting each one in Python
      (schemas.product.Timestamp), whatever time zone the server, database or role defaults to.
    - DB_STATEMENT_TIMEOUT_MS and DB_LOCK_TIMEOUT_MS (0: no limit).
    """
    prefix = (
        "SET LOCAL timezone = 'UTC'; "
        f"SET LOCAL statement_timeout = {settings.db_statement_timeout_ms}; "
        f"SET LOCAL lock_timeout = {settings.db_lock_timeout_ms}; "
    )

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _with_settings(
        connection: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        _executemany: bool,
    ) -> tuple[str, Any]:
        # Idle: no transaction is open, so this statement starts one.
        idle = cursor.connection.info.transaction_status == TRANSACTION_STATUS_IDLE
        head = prefix if idle else ""
        sent_next = connection.info.pop(_SENT_NEXT, None)
        if sent_next is None:
            return head + statement, parameters
        sql, own = sent_next
        head += sql
        if isinstance(parameters, dict):
            # A name in both is one parameter of the message: it can have one value only.
            clash = [name for name in own if name in parameters and parameters[name] != own[name]]
            if clash:
                raise ValueError(f"parameters sent with the next statement clash: {clash}")
            return head + statement, {**parameters, **own}
        # Parameters that cannot be merged (an executemany's): it goes first, on its own.
        cursor.execute(head, own)
        return statement, parameters

    @event.listens_for(engine, "checkin")
    def _drop_unsent(_dbapi_connection: Any, record: Any) -> None:
        # Unsent when its transaction ended: it goes with it, never to the next checkout.
        record.info.pop(_SENT_NEXT, None)


def build_engine(database_url: str, settings: Settings, *, for_reads: bool = False) -> Engine:
    """Create an engine for `database_url` with the pool and driver options this service needs.

    The service, migrations, scripts and the tests all build their engines here, so the tests
    run on the configuration the service runs with. `for_reads`: see `build_read_engine`.
    """
    url = make_url(database_url)
    options: dict[str, Any] = {"echo": settings.db_echo}
    if url.get_backend_name() == "sqlite":
        options["connect_args"] = {"check_same_thread": False}
        if url.database in (None, "", ":memory:"):
            # One shared connection, or every checkout would see a new, empty database.
            options["poolclass"] = StaticPool
    else:
        options.update(
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
            pool_recycle=settings.db_pool_recycle,
            connect_args=_postgres_connect_args(settings),
        )
        if url.get_driver_name() == "psycopg2":
            options["connect_args"]["connection_factory"] = ConfirmedCommitConnection
        if for_reads:
            options["isolation_level"] = "AUTOCOMMIT"
    engine = create_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine)
    elif engine.dialect.driver == "psycopg2":
        _replace_hung_up_connections(engine)
        _set_in_every_transaction(engine, settings)
    return engine


def build_read_engine(engine: Engine, settings: Settings) -> Engine:
    """The engine for sessions that only read: on PostgreSQL, each statement commits by itself.

    A read then costs one round trip instead of three (BEGIN, the SELECT, COMMIT). It is an
    engine with a pool of its own, whose connections are in autocommit from the start: one
    pool switching each connection between the two modes would pay for every switch (and
    psycopg2 sends a `SET` to switch back; bench/README.md). A listing's page and total are
    one statement, so they still come from one snapshot. Nothing that writes is given it.
    SQLite reads in-process, with no round trip to save: it shares the one engine.
    """
    if engine.dialect.name != "postgresql":
        return engine
    return build_engine(engine.url.render_as_string(hide_password=False), settings, for_reads=True)


def build_replica_engine(settings: Settings) -> Engine | None:
    """The engine for reads on DATABASE_READ_URL's replica, like `build_read_engine`'s; None
    when there is no replica."""
    if settings.database_read_url is None:
        return None
    return build_engine(settings.database_read_url, settings, for_reads=True)


_settings = get_settings()
engine = build_engine(_settings.database_url, _settings)
read_engine = build_read_engine(engine, _settings)
replica_engine = build_replica_engine(_settings)
