"""Step 6 of the guide: one short session per request, always closed, rolled back on error."""

from collections.abc import AsyncIterator, Generator
from typing import Annotated

import anyio
from fastapi import Depends, Request
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from config import get_settings
from database.session import SessionLocal


def database_capacity() -> int:
    """How many requests may hold a database connection at once: the pool's whole size."""
    settings = get_settings()
    return settings.db_pool_size + settings.db_max_overflow


async def database_slot(request: Request) -> AsyncIterator[None]:
    """Wait (in the event loop, not in a worker thread) for one of the pool's connections.

    A request that cannot get one within DB_POOL_TIMEOUT gets a 503, so overload is answered
    within a bounded time instead of piling up threads blocked on the pool.
    """
    state = request.app.state
    if not hasattr(state, "database_slots"):
        state.database_slots = anyio.Semaphore(database_capacity())
    slots: anyio.Semaphore = state.database_slots
    timeout = get_settings().db_pool_timeout
    with anyio.move_on_after(timeout) as waiting:
        await slots.acquire()
    if waiting.cancelled_caught:
        raise PoolTimeoutError(f"no database connection became free within {timeout} s")
    try:
        yield
    finally:
        slots.release()


def get_database_session(
    _slot: Annotated[None, Depends(database_slot, scope="function")],
) -> Generator[Session, None, None]:
    """Yield a new session for this request; the tests swap it via `app.dependency_overrides`."""
    session = SessionLocal()
    try:
        yield session
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()


# scope="function": the session closes (its connection goes back to the pool) as soon as the
# route returns, not after the response has been sent. Writes commit inside the route (crud).
SessionDep = Annotated[Session, Depends(get_database_session, scope="function")]
