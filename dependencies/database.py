"""Step 6 of the guide: one short session per request, always closed, rolled back on error.

One dependency per kind of request, all from the one `SessionLocal` factory: `SessionDep` for
writes (bound to `engine`: one transaction per request), `ReadSessionDep` for reads (bound to
`read_engine`, or to `replica_engine` when DATABASE_READ_URL names a replica that may serve
the read: `get_read_session`) and `PrimaryReadSessionDep` for a read that must see the
primary itself. The tests swap them through `app.dependency_overrides`.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from config import get_settings
from database.engine import engine, read_engine, replica_engine
from database.event_loop import run_blocking
from database.replica import ReplicaMonitor, primary_position
from database.session import SessionLocal
from dependencies.consistency import requested_token

logger = logging.getLogger("catalog.replica")
# Set in a request's state when the replica failed one of its statements: the request is
# answered again with its reads on the primary (`api.middleware.ReplicaFallbackMiddleware`).
REPLICA_FAILED = "replica_failed"


def database_capacity() -> int:
    """How many requests may hold a database connection at once: the pool's whole size."""
    settings = get_settings()
    return settings.db_pool_size + settings.db_max_overflow


def database_slots() -> dict[Engine, asyncio.Semaphore]:
    """One semaphore per pool, as large as the pool: `app.state.database_slots`."""
    binds = {engine, read_engine, *([replica_engine] if replica_engine is not None else [])}
    return {bind: asyncio.Semaphore(database_capacity()) for bind in binds}


async def take_database_slot(request: Request, bind: Engine = engine) -> asyncio.Semaphore:
    """Wait (in the event loop, not in a worker thread) for one of `bind`'s pooled connections.

    Returns the semaphore to release when the connection is back. A request that cannot get
    one within DB_POOL_TIMEOUT gets a 503, so overload is answered within a bounded time, and
    the pool itself never makes anyone wait (a route on the event loop must not block it).
    """
    state = request.app.state
    every_pool: dict[Engine, asyncio.Semaphore] | None = getattr(state, "database_slots", None)
    if every_pool is None:  # an app served without its lifespan, which makes them (main.py)
        every_pool = state.database_slots = database_slots()
    slots = every_pool[bind]
    timeout = get_settings().db_pool_timeout
    try:
        async with asyncio.timeout(timeout):
            await slots.acquire()
    except TimeoutError:
        raise PoolTimeoutError(f"no database connection became free within {timeout} s") from None
    return slots


@asynccontextmanager
async def _request_session(
    request: Request, bind: Engine, *, connected: bool = False
) -> AsyncIterator[Session]:
    """The guide's generator, as an `async def`: creating a session touches no database, so it
    happens in the event loop; what talks to the database here (a rollback on error, closing a
    session that still holds a transaction) goes through `run_blocking`, like the route.

    `connected`: the session has its connection before it is yielded, so that a server that
    cannot give one fails here, before the route runs.
    """
    slots = await take_database_slot(request, bind)
    try:
        session = SessionLocal(bind=bind)
        if connected:
            try:
                await run_blocking(session, session.connection)
            except Exception:
                session.close()
                raise
        try:
            yield session
        except Exception:
            await run_blocking(session, session.rollback)
            raise
        finally:
            if session.in_transaction():
                await run_blocking(session, session.close)
            else:
                session.close()  # nothing to end: no round trip
    finally:
        slots.release()


async def get_database_session(request: Request) -> AsyncIterator[Session]:
    """A session for a write: everything it does is one transaction, committed by crud."""
    async with _request_session(request, engine) as session:
        yield session


def replica_monitor(request: Request) -> ReplicaMonitor | None:
    """This process's `ReplicaMonitor` (`main.lifespan`); None when there is no replica."""
    monitor: ReplicaMonitor | None = getattr(request.app.state, "replica_monitor", None)
    return monitor if replica_engine is not None else None


async def get_read_session(request: Request) -> AsyncIterator[Session]:
    """A session for a request that only reads (`database.engine.build_read_engine`): on the
    replica when it may serve the read (`ReplicaMonitor.serves`), else on the primary.

    The replica never causes an error answer. One that cannot give a connection (down,
    restarting, its pool slots all taken for DB_POOL_TIMEOUT) is marked down and the read goes
    to the primary. One that fails a statement of the route marks the request
    (`REPLICA_FAILED`), and the replica down if the connection was lost; the request is then
    answered again, from the primary.
    """
    monitor = replica_monitor(request)
    replica_failed_before = getattr(request.state, REPLICA_FAILED, False)  # answering again
    async with AsyncExitStack() as stack:
        replica: ReplicaMonitor | None = None  # set once the session is on the replica
        if (
            monitor is not None
            and not replica_failed_before
            and monitor.serves(requested_token(request))  # a malformed token: 400 here
        ):
            assert replica_engine is not None
            try:
                session = await stack.enter_async_context(
                    _request_session(request, replica_engine, connected=True)
                )
                replica = monitor
            except (DBAPIError, PoolTimeoutError) as exc:
                logger.warning("replica unavailable, reading from the primary: %s", exc)
                monitor.mark_down()
        if replica is None:
            yield await stack.enter_async_context(_request_session(request, read_engine))
            return
        try:
            yield session
        except DBAPIError as exc:
            logger.warning("the replica failed a read, reading from the primary: %s", exc)
            setattr(request.state, REPLICA_FAILED, True)
            if exc.connection_invalidated:
                replica.mark_down()
            raise


async def get_primary_read_session(request: Request) -> AsyncIterator[Session]:
    """A session for a read that must see the primary itself (readiness: can we write?)."""
    async with _request_session(request, read_engine) as session:
        yield session


async def primary_wal_position(request: Request) -> int:
    """The primary's WAL position now: one autocommit statement on the primary's read pool.

    Asked after a write has committed, it is at or past that write's commit record: what a
    `Consistency-Token` is made of (`api.middleware.ConsistencyTokenMiddleware`).
    """
    async with _request_session(request, read_engine) as session:
        return await run_blocking(session, lambda: primary_position(session.connection()))


# scope="function": the session closes (its connection goes back to the pool) as soon as the
# route returns, not after the response has been sent. Writes commit inside the route (crud).
SessionDep = Annotated[Session, Depends(get_database_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
PrimaryReadSessionDep = Annotated[Session, Depends(get_primary_read_session, scope="function")]
ReplicaMonitorDep = Annotated[ReplicaMonitor | None, Depends(replica_monitor)]
