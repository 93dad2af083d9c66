"""Inside `cooperation()`, blocking database code runs in a greenlet on the event loop on
PostgreSQL, on a thread else; outside it, psycopg2 runs as it does by itself."""

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import psycopg2
import psycopg2.extensions
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from sqlalchemy.util.concurrency import greenlet_spawn

from api.routing import EventLoopRoute
from config import Settings
from database.engine import build_engine
from database.event_loop import cooperation, run_blocking, wait_for_server
from dependencies.database import (
    SessionDep,
    get_database_session,
    get_primary_read_session,
    get_read_session,
)
from tests.databases import ON_POSTGRES, fresh_postgres_database, upgrade

postgres_only = pytest.mark.postgres_only


@pytest.fixture
def fresh_engine(database_url: str) -> Iterator[Engine]:
    """An engine of its own (pool of 2) whose pool has not connected yet."""
    settings = Settings(database_url=database_url, db_pool_size=2, db_max_overflow=0)
    engine = build_engine(settings.database_url, settings)
    with cooperation(engine):
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


# The rule of `EventLoopRoute`: nothing in such a route may block but the database. asyncio's
# debug mode reports every step of the loop that takes longer than `slow_callback_duration`;
# these tests hold the service's routes to the rule with it, and show that it catches a
# route that breaks it.
SLOW_STEP_S = 0.1


Client = Callable[[str, str, Any], Awaitable[Any]]


def _slow_steps(app: FastAPI, requests: Callable[[Client], Awaitable[None]]) -> list[str]:
    """Serve what `requests` sends in one event loop in debug mode; the slow steps reported.

    Only if the scenario is slow twice in a row: a route that blocks does so every time, where
    a step that another process kept off the CPU for a moment (a busy 2-core machine) is not
    slow again.
    """
    return _slow_steps_once(app, requests) and _slow_steps_once(app, requests)


def _slow_steps_once(app: FastAPI, requests: Callable[[Client], Awaitable[None]]) -> list[str]:
    reports: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "took" in record.getMessage():
                reports.append(record.getMessage())

    async def scenario() -> None:
        asyncio.get_running_loop().slow_callback_duration = SLOW_STEP_S
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def send(method: str, path: str, body: Any = None) -> Any:
                response = await client.request(method, path, json=body)
                assert response.status_code < 400, (method, path, response.text)
                return response.json() if response.content else None

            await requests(send)

    handler = Collect()
    logging.getLogger("asyncio").addHandler(handler)
    try:
        asyncio.run(scenario(), debug=True)
    finally:
        logging.getLogger("asyncio").removeHandler(handler)
    return reports


@pytest.fixture
def served_on() -> Iterator[Callable[[FastAPI], FastAPI]]:
    """Give an app sessions on a database of its own (the routes commit), on an engine that
    cooperates with the event loop and whose pool has connected."""
    with fresh_postgres_database("catalog_event_loop") as url:
        settings = Settings(database_url=url, db_pool_size=2, db_max_overflow=0)
        engine = build_engine(settings.database_url, settings)
        with cooperation(engine):
            with engine.begin() as connection:
                upgrade(connection)
            yield from _serving_on(engine)
        engine.dispose()


def _serving_on(fresh_engine: Engine) -> Iterator[Callable[[FastAPI], FastAPI]]:
    def session() -> Iterator[Session]:
        with Session(fresh_engine) as db:
            yield db

    apps: list[FastAPI] = []

    def serve(app: FastAPI) -> FastAPI:
        app.dependency_overrides[get_database_session] = session
        app.dependency_overrides[get_read_session] = session
        app.dependency_overrides[get_primary_read_session] = session
        apps.append(app)
        return app

    yield serve
    for app in apps:
        app.dependency_overrides.clear()


def _probe_app() -> FastAPI:
    router = APIRouter(route_class=EventLoopRoute)

    @router.post("/sleeps")
    def sleeps(db: SessionDep) -> dict[str, str]:
        db.execute(text("SELECT 1"))
        time.sleep(SLOW_STEP_S * 3)  # breaks the rule
        return {}

    @router.post("/waits-for-the-database")
    def waits_for_the_database(db: SessionDep) -> dict[str, str]:
        db.execute(text("SELECT pg_sleep(0.3)"))  # keeps it: a wait for the database
        return {}

    app = FastAPI()
    app.include_router(router)
    return app


@postgres_only
def test_a_route_on_the_event_loop_that_blocks_is_reported(
    served_on: Callable[[FastAPI], FastAPI],
) -> None:
    app = served_on(_probe_app())

    async def waits(send: Client) -> None:
        await send("POST", "/waits-for-the-database", None)

    async def sleeps(send: Client) -> None:
        await send("POST", "/sleeps", None)

    assert _slow_steps(app, waits) == []
    assert _slow_steps(app, sleeps) != []


@postgres_only
def test_the_service_routes_block_on_nothing_but_the_database(
    served_on: Callable[[FastAPI], FastAPI],
) -> None:
    from main import app

    served_on(app)
    product = {"name": "Loop", "price": 1, "quantity": 5}

    async def every_route(send: Client) -> None:
        created = await send("POST", "/products", product)
        _, second = await send("POST", "/products/bulk", [product, product])
        path = f"/products/{created['id']}"
        await send("GET", path, None)
        await send("GET", "/products?sort=-price&limit=2", None)
        await send("PUT", path, {"price": 2})
        await send("PATCH", path, {"name": "Loop 2"})
        await send("POST", f"{path}/stock", {"delta": -1})
        await send("DELETE", f"/products/{second['id']}", None)
        category = await send("POST", "/categories", {"name": "Loop"})
        category_path = f"/categories/{category['id']}"
        await send("GET", category_path, None)
        await send("GET", "/categories?sort=-name", None)
        await send("PUT", category_path, {"description": "d"})
        await send("PATCH", category_path, {"name": "Loop 2"})
        await send("PATCH", path, {"category_id": category["id"]})
        await send("GET", f"{path}?expand=category", None)
        await send("GET", "/products?expand=category&category_id=1", None)
        await send("PATCH", path, {"category_id": None})
        await send("DELETE", category_path, None)
        await send("GET", "/health/ready", None)

    assert _slow_steps(app, every_route) == []
