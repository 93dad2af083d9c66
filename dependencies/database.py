"""Step 6 of the guide: one short session per request, always closed, rolled back on error.

Two dependencies, one per kind of request, both from the one `SessionLocal` factory:
`SessionDep` for writes (bound to `engine`: one transaction per request) and `ReadSessionDep`
for reads (bound to `read_engine`). The tests swap both through `app.dependency_overrides`.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from config import get_settings
from database.engine import engine, read_engine
from database.event_loop import run_blocking
from database.session import SessionLocal


def database_capacity() -> int:
    """How many requests may hold a database connection at once: the pool's whole size."""
    settings = get_settings()
    return settings.db_pool_size + settings.db_max_overflow


def database_slots() -> dict[Engine, asyncio.Semaphore]:
    """One semaphore per pool, as large as the pool: `app.state.database_slots`."""
    return {bind: asyncio.Semaphore(database_capacity()) for bind in {engine, read_engine}}


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
async def _request_session(request: Request, bind: Engine) -> AsyncIterator[Session]:
    """The guide's generator, as an `async def`: creating a session touches no database, so it
    happens in the event loop; what talks to the database here (a rollback on error, closing a
    session that still holds a transaction) goes through `run_blocking`, like the route."""
    slots = await take_database_slot(request, bind)
    try:
        session = SessionLocal(bind=bind)
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


async def get_read_session(request: Request) -> AsyncIterator[Session]:
    """A session for a request that only reads (`database.engine.build_read_engine`)."""
    async with _request_session(request, read_engine) as session:
        yield session


# scope="function": the session closes (its connection goes back to the pool) as soon as the
# route returns, not after the response has been sent. Writes commit inside the route (crud).
SessionDep = Annotated[Session, Depends(get_database_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
