"""Blocking database code runs in a greenlet on the event loop on PostgreSQL, on a thread else."""

import asyncio
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from sqlalchemy.util.concurrency import greenlet_spawn

from config import Settings
from database.concurrency import run_blocking, wait_for_server
from database.engine import build_engine
from tests.databases import ON_POSTGRES

postgres_only = pytest.mark.postgres_only


@pytest.fixture
def fresh_engine(database_url: str) -> Iterator[Engine]:
    """An engine of its own (pool of 2) whose pool has not connected yet."""
    settings = Settings(database_url=database_url, db_pool_size=2, db_max_overflow=0)
    engine = build_engine(settings.database_url, settings)
    yield engine
    engine.dispose()


def _query(session: Session, sql: str) -> tuple[Any, int]:
    """The statement's scalar result, and the thread that ran it."""
    return session.execute(text(sql)).scalar_one(), threading.get_ident()


async def _run(engine: Engine, sql: str) -> tuple[Any, int]:
    with Session(engine) as session:
        return await run_blocking(session, _query, session, sql)


@pytest.mark.skipif(ON_POSTGRES, reason="the SQLite case")
def test_sqlite_work_runs_on_a_worker_thread(fresh_engine: Engine) -> None:
    async def scenario() -> tuple[int, int]:
        await _run(fresh_engine, "SELECT 1")  # connected: SQLite still blocks in C
        _, ran_on = await _run(fresh_engine, "SELECT 1")
        return ran_on, threading.get_ident()

    ran_on, loop_thread = asyncio.run(scenario())

    assert ran_on != loop_thread


@postgres_only
def test_postgres_work_runs_on_the_event_loop_once_the_pool_has_connected(
    fresh_engine: Engine,
) -> None:
    async def scenario() -> tuple[int, int, int]:
        # The pool's first connection sets up the dialect under a threading lock: a thread.
        _, first = await _run(fresh_engine, "SELECT 1")
        _, second = await _run(fresh_engine, "SELECT 1")
        return first, second, threading.get_ident()

    first, second, loop_thread = asyncio.run(scenario())

    assert first != loop_thread
    assert second == loop_thread


@postgres_only
def test_the_event_loop_serves_others_while_a_query_waits_for_postgres(
    fresh_engine: Engine,
) -> None:
    async def scenario() -> tuple[int, int]:
        await _run(fresh_engine, "SELECT 1")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        _, ran_on = await _run(fresh_engine, "SELECT pg_sleep(0.5)")
        ticker.cancel()
        return ticks, ran_on

    ticks, ran_on = asyncio.run(scenario())

    # The query ran on the loop's own thread, and the loop kept ticking while it waited
    # (~50 ticks; none if psycopg2 had blocked the thread).
    assert ran_on == threading.main_thread().ident
    assert ticks >= 10


def _span(session: Session) -> tuple[datetime, datetime, int]:
    """When a 0.3 s statement started and ended on the server, and the thread that ran it."""
    start, end = session.execute(
        text("SELECT statement_timestamp(), clock_timestamp() FROM pg_sleep(0.3)")
    ).one()
    return start, end, threading.get_ident()


@postgres_only
def test_the_queries_of_two_requests_wait_at_once_on_one_thread(fresh_engine: Engine) -> None:
    async def span() -> tuple[datetime, datetime, int]:
        with Session(fresh_engine) as session:
            return await run_blocking(session, _span, session)

    async def scenario() -> tuple[tuple[datetime, datetime, int], ...]:
        await _run(fresh_engine, "SELECT 1")
        return tuple(await asyncio.gather(span(), span()))

    (start_a, end_a, thread_a), (start_b, end_b, thread_b) = asyncio.run(scenario())

    assert thread_a == thread_b == threading.main_thread().ident
    assert start_a < end_b and start_b < end_a  # the two statements overlapped


def _pid_then_sleep(session: Session, pids: list[int]) -> None:
    pids.append(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
    session.execute(text("SELECT pg_sleep(5)"))


@postgres_only
def test_a_request_cancelled_mid_query_never_lends_its_connection_again(
    fresh_engine: Engine,
) -> None:
    async def scenario() -> tuple[int, set[int], int]:
        await _run(fresh_engine, "SELECT 1")
        pids: list[int] = []
        with Session(fresh_engine) as session:
            slow = asyncio.create_task(run_blocking(session, _pid_then_sleep, session, pids))
            await asyncio.sleep(0.3)
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
        # Both connections of the pool of 2, taken at once.
        after = await asyncio.gather(
            _run(fresh_engine, "SELECT pg_backend_pid() FROM pg_sleep(0.1)"),
            _run(fresh_engine, "SELECT pg_backend_pid() FROM pg_sleep(0.1)"),
        )
        checked_out: int = fresh_engine.pool.checkedout()  # type: ignore[attr-defined]
        return pids[0], {pid for pid, _ in after}, checked_out

    interrupted, pool_pids, checked_out = asyncio.run(scenario())

    # The connection still busy with the interrupted statement was discarded, not pooled.
    assert interrupted not in pool_pids
    assert len(pool_pids) == 2
    assert checked_out == 0


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A DSN for a server that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    host, port = listener.getsockname()
    previous = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(wait_for_server)
    try:
        yield f"host={host} port={port} dbname=x user=x connect_timeout=2"
    finally:
        psycopg2.extensions.set_wait_callback(previous)
        listener.close()


def test_connecting_to_a_silent_server_gives_up_after_connect_timeout_in_a_thread(
    silent_server: str,
) -> None:
    outcome: list[BaseException] = []

    def connect() -> None:
        try:
            psycopg2.connect(silent_server)
        except psycopg2.OperationalError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout=15)  # libpq ignores connect_timeout when polled: would wait for TCP

    assert not worker.is_alive()
    assert "timeout expired" in str(outcome[0])


def test_connecting_to_a_silent_server_gives_up_after_connect_timeout_in_the_loop(
    silent_server: str,
) -> None:
    async def connect() -> None:
        await asyncio.wait_for(greenlet_spawn(psycopg2.connect, silent_server), timeout=15)

    with pytest.raises(psycopg2.OperationalError, match="timeout expired"):
        asyncio.run(connect())


@postgres_only
def test_connections_opened_for_the_event_loop_are_opened_on_a_thread(
    fresh_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening one resolves the host name with a blocking getaddrinfo(): never on the loop."""
    opened_on: list[int] = []
    connect = psycopg2.connect

    def spy(*args: Any, **kwargs: Any) -> Any:
        opened_on.append(threading.get_ident())
        return connect(*args, **kwargs)

    monkeypatch.setattr(psycopg2, "connect", spy)

    async def scenario() -> list[tuple[Any, int]]:
        await _run(fresh_engine, "SELECT 1")  # the first connection (on a thread anyway)
        # Two at once: the pool of 2 opens its second connection for a greenlet.
        return list(
            await asyncio.gather(
                _run(fresh_engine, "SELECT 1 FROM pg_sleep(0.1)"),
                _run(fresh_engine, "SELECT 1 FROM pg_sleep(0.1)"),
            )
        )

    runs = asyncio.run(scenario())

    assert len(opened_on) == 2
    assert all(thread == threading.main_thread().ident for _, thread in runs)
    assert threading.main_thread().ident not in opened_on
