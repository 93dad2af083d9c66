"""The engine's pool lends out only live connections, without a round trip per checkout."""

import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from config import Settings
from database.engine import (
    StandbyUnconfirmed,
    build_engine,
    build_read_engine,
    sent_with_next_statement,
)

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


def _session_value(connection: Connection, name: str) -> str:
    """`name` as the server connection holds it between transactions: below SQLAlchemy's
    events, so without the `SET LOCAL`s of database.engine."""
    raw = connection.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    cursor.execute(f"SHOW {name}")
    row = cursor.fetchone()
    cursor.close()
    raw.rollback()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("timeouts_ms", [(5000, 2000), (0, 0)], ids=["timeouts", "no-timeouts"])
def test_every_transaction_speaks_utc_whatever_the_database_default(
    engine: Engine, database_url: str, timeouts_ms: tuple[int, int]
) -> None:
    """UTC per transaction, not per session: through a pooler in transaction mode a session
    setting would not follow the client, and PgBouncer refuses the `options` that set one."""
    statement_ms, lock_ms = timeouts_ms
    settings = Settings(
        database_url=database_url,
        db_pool_size=1,
        db_statement_timeout_ms=statement_ms,
        db_lock_timeout_ms=lock_ms,
    )
    writes = build_engine(database_url, settings)
    reads = build_read_engine(writes, settings)
    database = engine.url.database
    with engine.begin() as admin:
        admin.exec_driver_sql(f"ALTER DATABASE \"{database}\" SET timezone = 'America/New_York'")
    zones, moments, session_zones = [], [], []
    try:
        for bound in (writes, reads):
            with bound.connect() as connection:
                zones.append(connection.execute(text("SHOW TimeZone")).scalar_one())
                moments.append(
                    connection.execute(text("SELECT TIMESTAMPTZ '2026-01-01 12:00+05'"))
                    .scalar_one()
                    .isoformat()
                )
                connection.commit()
                session_zones.append(_session_value(connection, "TimeZone"))
    finally:
        with engine.begin() as admin:
            admin.exec_driver_sql(f'ALTER DATABASE "{database}" RESET timezone')
        reads.dispose()
        writes.dispose()

    assert zones == ["UTC", "UTC"]
    assert moments == ["2026-01-01T07:00:00+00:00"] * 2
    assert session_zones == ["America/New_York"] * 2
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
def bounded_reads(bounded: Engine, database_url: str) -> Iterator[Engine]:
    """The read engine the service would build beside `bounded`."""
    engine = build_read_engine(bounded, _bounded_settings(database_url))
    yield engine
    engine.dispose()


def _limits(connection: Connection) -> tuple[str, str]:
    statement = connection.execute(text("SHOW statement_timeout")).scalar_one()
    lock = connection.execute(text("SHOW lock_timeout")).scalar_one()
    return statement, lock


def test_every_transaction_runs_with_the_timeouts(bounded: Engine, bounded_reads: Engine) -> None:
    with bounded.connect() as connection:
        in_a_transaction = _limits(connection)
        connection.commit()
        in_the_next_one = _limits(connection)
        connection.rollback()
    with bounded_reads.connect() as connection:
        autocommit = _limits(connection)  # each statement a transaction of its own

    assert in_a_transaction == in_the_next_one == autocommit == ("1234ms", "567ms")


def test_the_timeouts_are_no_session_state(bounded: Engine) -> None:
    """What a pooler in transaction mode needs: nothing stays behind on the server connection
    for the next client, and nothing depends on the startup parameters it may not pass on."""
    with bounded.connect() as connection:
        _limits(connection)
        connection.commit()
        session_value = _session_value(connection, "statement_timeout")

    assert session_value == "0"
    assert "statement_timeout" not in bounded.url.query
    assert "options" not in bounded.dialect.create_connect_args(bounded.url)[1]


def test_a_statement_past_the_timeout_is_cancelled(bounded: Engine, bounded_reads: Engine) -> None:
    for engine in (bounded, bounded_reads):
        with engine.connect() as connection, pytest.raises(OperationalError) as raised:
            connection.execute(text("SELECT pg_sleep(5)"))

        assert raised.value.orig.pgcode == "57014"  # type: ignore[union-attr]


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


# sent_with_next_statement: a transaction-local count of the times the statement ran.
_MARKED = text("SELECT coalesce(nullif(current_setting('catalog.test_mark', true), ''), '0')")
_MARK = text(f"SELECT set_config('catalog.test_mark', (({_MARKED.text})::int + 1)::text, true)")


@pytest.mark.parametrize("executemany", [False, True], ids=["one", "executemany"])
def test_a_statement_sent_with_the_next_one_runs_in_its_transaction(
    pool_of_one: Engine, executemany: bool
) -> None:
    with pool_of_one.connect() as connection:
        with sent_with_next_statement(connection, [_MARK], {}):
            if executemany:  # parameters that cannot be merged: it goes just before, alone
                connection.execute(text("SELECT :n"), [{"n": 1}, {"n": 2}])
            else:
                connection.execute(text("SELECT 1"))
        marked = connection.execute(_MARKED).scalar_one()

    assert marked == "1"  # once, however many parameter sets the next statement has


def test_parameters_that_clash_with_the_next_statements_refuse_it(pool_of_one: Engine) -> None:
    with pool_of_one.connect() as connection:
        mark = text("SELECT set_config('catalog.test_mark', :n, true)")
        with (
            sent_with_next_statement(connection, [mark], {"n": "1"}),
            pytest.raises(ValueError, match="clash"),
        ):
            connection.execute(text("SELECT :n"), {"n": "2"})
        marked = connection.execute(_MARKED).scalar_one()

    assert marked == "0"  # nothing was sent: neither statement ran


def test_a_parameter_shared_at_the_same_value_is_one(pool_of_one: Engine) -> None:
    with pool_of_one.connect() as connection:
        mark = text("SELECT set_config('catalog.test_mark', :n, true)")
        with sent_with_next_statement(connection, [mark], {"n": "7"}):
            value = connection.execute(text("SELECT :n"), {"n": "7"}).scalar_one()
        marked = connection.execute(_MARKED).scalar_one()

    assert (value, marked) == ("7", "7")


def test_a_statement_left_unsent_goes_with_its_block(pool_of_one: Engine) -> None:
    with pool_of_one.connect() as connection:
        with sent_with_next_statement(connection, [_MARK], {}):
            pass
        marked = connection.execute(_MARKED).scalar_one()

    assert marked == "0"


def test_a_statement_left_unsent_never_reaches_the_next_checkout(pool_of_one: Engine) -> None:
    with ExitStack() as block:
        first = pool_of_one.connect()
        block.enter_context(sent_with_next_statement(first, [_MARK], {}))
        first.close()  # back to the pool while the block is still open
        with pool_of_one.connect() as second:  # the pool's one connection, lent again
            marked = second.execute(_MARKED).scalar_one()

    assert marked == "0"
