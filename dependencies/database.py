"""Step 6 of the guide: one short session per request, always closed, rolled back on error."""

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from config import get_settings
from database.concurrency import run_blocking
from database.session import SessionLocal

__all__ = ["SessionDep", "get_database_session", "run_blocking", "take_database_slot"]


def database_capacity() -> int:
    """How many requests may hold a database connection at once: the pool's whole size."""
    settings = get_settings()
    return settings.db_pool_size + settings.db_max_overflow


async def take_database_slot(request: Request) -> asyncio.Semaphore:
    """Wait (in the event loop, not in a worker thread) for one of the pool's connections.

    Returns the semaphore to release when the connection is back. A request that cannot get
    one within DB_POOL_TIMEOUT gets a 503, so overload is answered within a bounded time, and
    the pool itself never makes anyone wait (a greenlet-run route must not block the loop).
    """
    state = request.app.state
    slots: asyncio.Semaphore | None = getattr(state, "database_slots", None)
    if slots is None:  # an app served without its lifespan, which makes them (main.py)
        slots = state.database_slots = asyncio.Semaphore(database_capacity())
    if slots.locked():
        # Every connection is lent out: queue (first come, first served), but not forever.
        timeout = get_settings().db_pool_timeout
        try:
            async with asyncio.timeout(timeout):
                await slots.acquire()
        except TimeoutError:
            raise PoolTimeoutError(
                f"no database connection became free within {timeout} s"
            ) from None
    else:
        # A free slot: taken at once, without the timer (the common case, on every request).
        await slots.acquire()
    return slots


async def get_database_session(request: Request) -> AsyncIterator[Session]:
    """Yield a new session for this request; the tests swap it via `app.dependency_overrides`.

    The guide's generator, as an `async def`: creating a session touches no database, so it
    happens in the event loop. The route (a plain `def`, run by `api.routing.SessionRoute`)
    and the work here that talks to the database — a rollback on error, closing a session that
    still holds a transaction — go through `run_blocking`: a greenlet on this loop on
    PostgreSQL, a worker thread on SQLite.
    """
    slots = await take_database_slot(request)
    try:
        session = SessionLocal()
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


# scope="function": the session closes (its connection goes back to the pool) as soon as the
# route returns, not after the response has been sent. Writes commit inside the route (crud).
SessionDep = Annotated[Session, Depends(get_database_session, scope="function")]
