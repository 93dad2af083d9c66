"""How blocking database code meets the event loop: in a greenlet on PostgreSQL, on a thread else.

The guide's routes are plain `def` functions that use a blocking `Session`, and FastAPI runs
such routes on AnyIO's worker threads. Handing every request to a thread and back costs more
CPU than the database query it makes (README, Performance). psycopg2 offers a way out that
keeps the code blocking: a *wait callback* (`psycopg2.extensions.set_wait_callback`, psycopg2's
"support for coroutine libraries") is called whenever libpq would block, and may wait however
it likes. SQLAlchemy's asyncio extension runs its blocking core in a greenlet and turns each
wait into an `await` (`greenlet_spawn` / `await_`); together, a plain `def` route runs in a
greenlet on the event loop, and while it waits for PostgreSQL the loop serves other requests.

- `run_blocking(session, fn)` runs `fn` that way when the session is on psycopg2, and on a
  worker thread otherwise (SQLite blocks in C, where no callback can reach it).
- `wait_for_server` is the callback. Outside such a greenlet (a worker thread, alembic, a
  script) it blocks on `poll()`, as psycopg2 itself would.

Two rules keep this safe, and the service follows both: nothing in a greenlet-run route may
block on anything but psycopg2 (the session dependency takes a pool slot before the route
runs, so the pool itself never makes the loop wait), and a session is used by one request.
"""

import asyncio
import select
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg2.extensions
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool
from sqlalchemy.util.concurrency import await_, greenlet_spawn, in_greenlet
from starlette.concurrency import run_in_threadpool

T = TypeVar("T")

_POLL_EVENTS = {
    psycopg2.extensions.POLL_READ: select.POLLIN,
    psycopg2.extensions.POLL_WRITE: select.POLLOUT,
}


def _wake(waiter: "asyncio.Future[None]") -> None:
    if not waiter.done():
        waiter.set_result(None)


def _wait_in_event_loop(fileno: int, state: int, timeout: float | None) -> bool:
    """Await readiness in the loop (in a greenlet); False if `timeout` seconds passed first."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    if state == psycopg2.extensions.POLL_READ:
        watch, unwatch = loop.add_reader, loop.remove_reader
    else:
        watch, unwatch = loop.add_writer, loop.remove_writer
    watch(fileno, _wake, waiter)
    try:
        await_(waiter if timeout is None else asyncio.wait_for(waiter, timeout))
    except TimeoutError:
        return False
    finally:
        unwatch(fileno)
    return True


def _wait_in_thread(fileno: int, state: int, timeout: float | None) -> bool:
    """Block until ready; False if `timeout` seconds passed first."""
    poller = select.poll()  # not select.select(): that fails on descriptors above 1023
    poller.register(fileno, _POLL_EVENTS[state])
    return bool(poller.poll(None if timeout is None else max(timeout, 0) * 1000))


def _connect_deadline(connection: Any) -> float | None:
    """When a connection still being set up must give up: its `connect_timeout`.

    libpq ignores `connect_timeout` for connections driven by polling, which is what a wait
    callback makes of every psycopg2 connection; without this, a server that accepts and never
    answers would hold a request (and, in the loop, its pool slot) until TCP gives up.
    """
    if connection.status != psycopg2.extensions.STATUS_SETUP:
        # Connected: a statement runs as long as the server lets it (DB_STATEMENT_TIMEOUT_MS).
        return None
    seconds = psycopg2.extensions.parse_dsn(connection.dsn).get("connect_timeout")
    if not seconds or int(seconds) <= 0:
        return None
    return time.monotonic() + max(int(seconds), 2)  # libpq's own minimum is 2 s


def wait_for_server(connection: Any) -> None:
    """psycopg2's wait callback: drive `connection` until libpq has what it was waiting for."""
    wait = _wait_in_event_loop if in_greenlet() else _wait_in_thread
    deadline = _connect_deadline(connection)
    while True:
        state = connection.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        if state not in _POLL_EVENTS:
            raise psycopg2.OperationalError(f"bad state from poll: {state}")
        timeout = None if deadline is None else deadline - time.monotonic()
        if not wait(connection.fileno(), state, timeout):
            raise psycopg2.OperationalError("timeout expired while connecting to the server")


# Pools that have made their first connection. SQLAlchemy runs the first connection's set-up
# (the dialect reading the server's settings) under a `threading.Lock`: a greenlet that held it
# while awaiting the server would block every other greenlet of its thread that wants a
# connection, and so the event loop that would wake it. Until then, work goes to threads.
_connected_pools: "weakref.WeakSet[Pool]" = weakref.WeakSet()


def cooperate_with_event_loop(engine: Engine) -> None:
    """Let `engine`'s sessions wait for psycopg2 in the event loop (`run_blocking`)."""
    psycopg2.extensions.set_wait_callback(wait_for_server)  # every psycopg2 connection

    # Registered after the dialect's own listener: this runs once that set-up is done (for
    # the pool in use: `engine.dispose()` starts a new one).
    @event.listens_for(engine, "connect")
    def _on_connect(_dbapi_connection: Any, _record: Any) -> None:
        _connected_pools.add(engine.pool)

    # Opening a connection blocks before libpq polls anything: the host name is resolved with
    # getaddrinfo() (libpq's docs: only `hostaddr` avoids it), and SCRAM hashes the password.
    # A pool that opens a connection from a greenlet (warm-up, recycling, replacing a dead
    # one, reconnecting after a failover) does it on a thread, so the loop never waits on DNS.
    @event.listens_for(engine, "do_connect")
    def _connect_on_a_thread(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        if not in_greenlet():
            return None  # SQLAlchemy connects as usual
        return await_(asyncio.to_thread(dialect.connect, *cargs, **cparams))


def waits_in_event_loop(session: Session) -> bool:
    """Whether `session`'s blocking calls can wait in the event loop: its engine cooperates
    (`cooperate_with_event_loop` installed the wait callback) and its pool has connected."""
    return session.get_bind().engine.pool in _connected_pools


async def run_blocking(session: Session, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run blocking `fn` that uses `session`: in a greenlet on this loop, or on a worker thread."""
    if waits_in_event_loop(session):
        return await greenlet_spawn(fn, *args, **kwargs)
    return await run_in_threadpool(fn, *args, **kwargs)
