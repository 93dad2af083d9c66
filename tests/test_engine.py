"""The engines as the service builds them: live connections, UTC, lock and statement limits."""

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import crud.products as crud
from config import Settings, normalize_database_url
from database.engine import build_engine
from database.synchronous_commit import StandbyUnconfirmed
from database.timeouts import waiting_with_deadlines
from models import Product

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def pool_of_one(database_url: str) -> Iterator[Engine]:
    engine = build_engine(
        database_url, Settings(database_url=database_url, db_pool_size=1, db_max_overflow=0)
    )
    yield engine
    engine.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        pid: int = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return pid


def _wait_until_gone(admin: Connection, pid: int) -> None:
    """pg_terminate_backend only signals the backend: wait until it has exited."""
    deadline = time.monotonic() + 10
    alive = text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid")
    while admin.execute(alive, {"pid": pid}).first() is not None:
        admin.rollback()  # a fresh snapshot of pg_stat_activity on the next look
        assert time.monotonic() < deadline, f"backend {pid} did not exit"
        time.sleep(0.01)


def test_a_connection_the_server_terminated_is_replaced_before_it_is_used(
    pool_of_one: Engine, engine: Engine
) -> None:
    first = _backend_pid(pool_of_one)
    assert _backend_pid(pool_of_one) == first  # pooled: the same backend serves again

    with engine.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        admin.commit()
        _wait_until_gone(admin, first)
    # The pooled connection is dead now; the request that takes it must not see an error.
    replacement = _backend_pid(pool_of_one)

    assert replacement != first


def test_timestamps_come_back_in_utc_whatever_the_database_default(
    engine: Engine, database_url: str
) -> None:
    """No session's time zone is set (through a pooler in transaction mode it would not follow
    the client): timestamps are converted to UTC as they arrive (models.columns.UTCDateTime)."""
    settings = Settings(database_url=database_url, db_pool_size=1)
    writes = build_engine(database_url, settings)
    database = engine.url.database
    with engine.begin() as admin:
        admin.exec_driver_sql(f"ALTER DATABASE \"{database}\" SET timezone = 'America/New_York'")
    try:
        with Session(writes) as session:
            product = crud.create_product(session, values={"name": "Zoned", "price": 1})
            session.commit()
            zone = session.execute(text("SHOW TimeZone")).scalar_one()
            session.expire_all()
            created_at = crud.get_product(session, product.id).created_at
            session.execute(delete(Product).where(Product.id == product.id))
            session.commit()
    finally:
        with engine.begin() as admin:
            admin.exec_driver_sql(f'ALTER DATABASE "{database}" RESET timezone')
        writes.dispose()

    assert zone == "America/New_York"  # the session's, left as the database set it
    assert created_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - created_at) < timedelta(minutes=5)
    assert "options" not in writes.dialect.create_connect_args(writes.url)[1]


def _bounded_settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        db_pool_size=1,
        db_max_overflow=0,
        db_statement_timeout_ms=1234,
        db_lock_timeout_ms=567,
    )


@pytest.fixture
def bounded(database_url: str) -> Iterator[Engine]:
    engine = build_engine(database_url, _bounded_settings(database_url))
    yield engine
    engine.dispose()


@pytest.fixture
def bounded_reads(database_url: str) -> Iterator[Engine]:
    """The autocommit engine the service reads with."""
    engine = build_engine(database_url, _bounded_settings(database_url), autocommit=True)
    yield engine
    engine.dispose()


def _session_value(connection: Connection, name: str) -> str:
    """`name` as the server connection holds it between transactions: below SQLAlchemy's
    events, so without the `SET LOCAL` of database.engine."""
    raw = connection.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    cursor.execute(f"SHOW {name}")
    row = cursor.fetchone()
    cursor.close()
    raw.rollback()
    assert row is not None
    return str(row[0])


def test_every_write_transaction_runs_with_the_timeouts_and_leaves_no_session_state(
    bounded: Engine,
) -> None:
    """What a pooler in transaction mode needs: nothing stays behind on the server connection
    for the next client, and nothing depends on the startup parameters it may not pass on."""
    with bounded.connect() as connection:
        in_a_transaction = _limits(connection)
        connection.commit()
        in_the_next_one = _limits(connection)
        connection.commit()
        session_values = (
            _session_value(connection, "statement_timeout"),
            _session_value(connection, "lock_timeout"),
        )

    assert in_a_transaction == in_the_next_one == ("1234ms", "567ms")
    assert session_values == ("0", "0")
    assert "options" not in bounded.dialect.create_connect_args(bounded.url)[1]


def _limits(connection: Connection) -> tuple[str, str]:
    statement = connection.execute(text("SHOW statement_timeout")).scalar_one()
    lock = connection.execute(text("SHOW lock_timeout")).scalar_one()
    return statement, lock


def test_a_write_statement_past_the_timeout_is_cancelled_by_the_server(bounded: Engine) -> None:
    with bounded.connect() as connection, pytest.raises(OperationalError) as raised:
        connection.execute(text("SELECT pg_sleep(5)"))

    assert raised.value.orig.pgcode == "57014"  # type: ignore[union-attr]
    assert not raised.value.connection_invalidated  # the connection stays in the pool


def test_a_read_past_the_timeout_is_given_up_by_the_service(
    bounded_reads: Engine, database_url: str
) -> None:
    started = time.monotonic()
    with (
        waiting_with_deadlines(_bounded_settings(database_url)),
        bounded_reads.connect() as connection,
        pytest.raises(OperationalError) as raised,
    ):
        connection.execute(text("SELECT pg_sleep(10)"))
    elapsed = time.monotonic() - started

    assert "timeout expired" in str(raised.value.orig)
    assert raised.value.connection_invalidated  # given up: the pool drops it
    assert elapsed < 1.234 + 1.5  # a read has no server-side timeout to wait for


def test_a_commit_the_synchronous_standby_did_not_confirm_fails(pool_of_one: Engine) -> None:
    """PostgreSQL answers such a COMMIT with success and a WARNING; here a deferred trigger
    sends that warning at the same point of the commit, without a standby.
    tests/scale/test_synchronous_commit.py cancels a real wait for a real standby."""
    with pool_of_one.connect() as connection:
        connection.execute(
            text(
                "CREATE TEMP TABLE unconfirmed (id int);"
                "CREATE FUNCTION pg_temp.warn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " RAISE WARNING 'canceling wait for synchronous replication due to user request';"
                " RETURN NULL; END $$;"
                "CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT ON unconfirmed"
                " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pg_temp.warn()"
            )
        )
        connection.commit()
        connection.execute(text("INSERT INTO unconfirmed VALUES (1)"))
        with pytest.raises(OperationalError) as raised:
            connection.commit()
        connection.rollback()
        committed = connection.execute(text("SELECT count(*) FROM unconfirmed")).scalar_one()
        connection.commit()  # the warning that was read is gone: this commit succeeds

    assert isinstance(raised.value.orig, StandbyUnconfirmed)
    assert not raised.value.connection_invalidated  # the connection stays in the pool
    assert committed == 1  # on the primary: the write's fate is unknown to the client


@contextmanager
def _hung_host() -> Iterator[str]:
    """`127.0.0.1:<port>` of a server that accepts connections and never says a word, as a
    machine that is gone looks to a client whose packets are dropped."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(listener.accept()[0])

    acceptor = threading.Thread(target=accept)
    acceptor.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        acceptor.join()
        for connection in accepted:
            connection.close()
        listener.close()


def _host_list_url(database_url: str, *hosts: str) -> str:
    """`database_url` in libpq's multi-host form, as an operator writes it for failover."""
    url = make_url(database_url)
    host_list = ",".join(hosts)
    return normalize_database_url(f"postgresql://{url.username}@{host_list}/{url.database}")


def test_a_host_list_moves_past_a_host_that_never_answers(database_url: str) -> None:
    url = make_url(database_url)
    with _hung_host() as hung:
        failover_url = _host_list_url(database_url, hung, f"{url.host}:{url.port or 5432}")
        settings = Settings(database_url=failover_url, db_connect_timeout=2)
        engine = build_engine(failover_url, settings)
        started = time.monotonic()
        with waiting_with_deadlines(settings), engine.connect() as connection:
            answer = connection.execute(text("SELECT 1")).scalar_one()
        elapsed = time.monotonic() - started
        engine.dispose()

    assert answer == 1
    assert 2 <= elapsed < 2 + 1.5  # the first host's own deadline, then the second host


def test_a_host_list_of_hosts_that_never_answer_names_each(database_url: str) -> None:
    with _hung_host() as first, _hung_host() as second:
        failover_url = _host_list_url(database_url, first, second)
        settings = Settings(database_url=failover_url, db_connect_timeout=2)
        engine = build_engine(failover_url, settings)
        with (
            waiting_with_deadlines(settings),
            pytest.raises(OperationalError) as raised,
            engine.connect(),
        ):
            pass
        engine.dispose()

    message = str(raised.value.orig)
    assert message.count("timeout expired after 2 s connecting") == 2, message
