"""The one place where blocking database code may run on the event loop, and why.

FastAPI runs a plain `def` route on a worker thread, so that it may block. Handing every
request to a thread and back costs more CPU than the simple query it makes (bench/README.md,
"Where a request's time goes"). psycopg2 offers a way out that keeps the route's code
blocking: a *wait callback* (`psycopg2.extensions.set_wait_callback`, psycopg2's "support for
coroutine libraries") is called whenever libpq would block, and may wait however it likes.
Run the route in a greenlet and make each wait an `await`, and a plain `def` route runs on
the event loop while the loop serves other requests during every wait for PostgreSQL.

It is an opt-in, made in two visible places, and it bends FastAPI's rule for `def` routes:
- a router opts in with `route_class=api.routing.EventLoopRoute`;
- the app opts in by serving inside `cooperation(engine)` (`main.lifespan`): the wait
  callback is process-wide state, so it is installed only while the app serves, and Alembic,
  scripts and code outside a served app run psycopg2 as psycopg2 runs by itself.

**The one rule: nothing in such a route may block but the database.** No HTTP call, no
`time.sleep`, no file read: on the event loop, one of those stalls every request in flight
(`tests/test_event_loop.py` shows asyncio's debug mode catching one). Work that blocks
belongs in a router without `EventLoopRoute`, where FastAPI puts it on a thread.

Where the bridge cannot apply it steps aside: SQLite blocks inside C, where no callback
reaches, and a pool that has not connected yet is still initialising the dialect under a
thread lock; both run on a worker thread, as FastAPI would.

`greenlet_spawn`, `await_` and `in_greenlet` come from `sqlalchemy.util.concurrency`: they are
what SQLAlchemy's asyncio extension is built on (not a documented public API), and no public
API of SQLAlchemy or greenlet offers "run this sync function in a greenlet whose waits are
awaits". They are pinned with SQLAlchemy in requirements.txt, and this module is their only
user.
"""

import asyncio
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


# Pools that have made their first connection since their engine started to cooperate.
# SQLAlchemy runs the first connection's set-up (the dialect reading the server's settings)
# under a `threading.Lock`: a greenlet that held it while awaiting the server would block
# every other greenlet of its thread that wants a connection, and so the event loop that
# would wake it. Until then, work goes to threads.
_connected_pools: "weakref.WeakSet[Pool]" = weakref.WeakSet()
_cooperating_engines: "weakref.WeakSet[Engine]" = weakref.WeakSet()
_serving = 0  # how many `cooperation()` blocks are open: the wait callback is theirs
_serving_lock = threading.Lock()


def _listen(engine: Engine) -> None:
    """The engine's part: mark its pool once connected; open connections off the loop."""
    if engine in _cooperating_engines:
        return
    _cooperating_engines.add(engine)

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


@contextmanager
def cooperation(*engines: Engine) -> Iterator[None]:
    """While the block runs, sessions of `engines` on psycopg2 may wait in the event loop.

    Installs psycopg2's wait callback for the process (and removes it when the last open
    block ends) and the engines' listeners. Other engines are unaffected.
    """
    global _serving
    for engine in engines:
        if engine.dialect.driver == "psycopg2":
            _listen(engine)
    with _serving_lock:
        if _serving == 0:
            psycopg2.extensions.set_wait_callback(wait_for_server)
        _serving += 1
    try:
        yield
    finally:
        with _serving_lock:
            _serving -= 1
            if _serving == 0:
                psycopg2.extensions.set_wait_callback(None)


def waits_in_event_loop(session: Session) -> bool:
    """Whether `session`'s blocking calls can wait in the event loop: the wait callback is
    installed (`cooperation`), and its engine cooperates with a pool that has connected."""
    return (
        psycopg2.extensions.get_wait_callback() is wait_for_server
        and session.get_bind().engine.pool in _connected_pools
    )


async def run_blocking(session: Session, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run blocking `fn` that uses `session`: in a greenlet on this loop, or on a worker thread."""
    if waits_in_event_loop(session):
        return await greenlet_spawn(fn, *args, **kwargs)
    return await run_in_threadpool(fn, *args, **kwargs)
