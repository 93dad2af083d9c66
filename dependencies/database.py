"""Step 6 of the guide: one short session per request, always closed, rolled back on error.

A write's session (`SessionDep`) is one transaction: committed when the request succeeded,
rolled back on any error, closed always. Declared with `scope="function"`, its exit runs as
soon as the route returns, before the response is sent: a commit that fails is a 503, never a
2xx. crud never commits; it may `flush()` to learn what the database generated.

A read's session (`ReadSessionDep`) is on the read engine (`database.engine`): one round trip
per statement, nothing to commit. It is typed `ReadSession`, apart from `Session`, so a route
cannot hand it to a function that writes (polar's read session). The tests swap both through
`app.dependency_overrides`.
"""

import logging
from collections.abc import Generator, Iterator
from typing import Annotated, NewType

from fastapi import Depends, Request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from database.engine import replica_engine
from database.replica import ReplicaMonitor, primary_position
from database.session import ReadSessionLocal, SessionLocal
from dependencies.consistency import requested_token

ReadSession = NewType("ReadSession", Session)
logger = logging.getLogger("catalog.replica")
# Set in a request's state when the replica failed one of its statements: the request is
# answered again with its reads on the primary (`api.middleware.ReplicaFallbackMiddleware`).
REPLICA_FAILED = "replica_failed"


def get_database_session() -> Generator[Session]:
    """The guide's generator: a session for a write, one transaction for the whole request."""
    session = SessionLocal()
    try:
        yield session
        session.commit()
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()


def get_primary_read_session() -> Iterator[ReadSession]:
    """A session for a request that only reads, from the primary."""
    with ReadSessionLocal() as session:
        yield ReadSession(session)


def replica_monitor(request: Request) -> ReplicaMonitor | None:
    """This process's `ReplicaMonitor` (`main.lifespan`); None when there is no replica."""
    monitor: ReplicaMonitor | None = getattr(request.app.state, "replica_monitor", None)
    return monitor if replica_engine is not None else None


def get_read_session(request: Request) -> Iterator[ReadSession]:
    """A session for a request that only reads: on the replica when it may serve the read
    (`ReplicaMonitor.serves`), else on the primary.

    The replica never causes an error answer. One that cannot give a connection (down,
    restarting, its pool all taken for DB_POOL_TIMEOUT) is marked down and the read goes to
    the primary. One that fails a statement of the route marks the request
    (`REPLICA_FAILED`), and the replica down if the connection was lost; the request is then
    answered again, from the primary.
    """
    monitor = replica_monitor(request)
    if (
        monitor is None
        or getattr(request.state, REPLICA_FAILED, False)  # answering again
        or not monitor.serves(requested_token(request))  # a malformed token: 400 here
    ):
        yield from get_primary_read_session()
        return
    session = ReadSessionLocal(bind=replica_engine)
    try:
        session.connection()
    except (DBAPIError, PoolTimeoutError) as exc:
        session.close()
        logger.warning("replica unavailable, reading from the primary: %s", exc)
        monitor.mark_down()
        yield from get_primary_read_session()
        return
    try:
        yield ReadSession(session)
    except DBAPIError as exc:
        logger.warning("the replica failed a read, reading from the primary: %s", exc)
        setattr(request.state, REPLICA_FAILED, True)
        if exc.connection_invalidated:
            monitor.mark_down()
        raise
    finally:
        session.close()


def primary_wal_position() -> int:
    """The primary's WAL position now: one autocommit statement on the primary's read pool.

    Asked after a write has committed, it is at or past that write's commit record: what a
    `Consistency-Token` is made of (`api.middleware.ConsistencyTokenMiddleware`).
    """
    with ReadSessionLocal() as session:
        return primary_position(session.connection())


SessionDep = Annotated[Session, Depends(get_database_session, scope="function")]
ReadSessionDep = Annotated[ReadSession, Depends(get_read_session, scope="function")]
PrimaryReadSessionDep = Annotated[ReadSession, Depends(get_primary_read_session, scope="function")]
ReplicaMonitorDep = Annotated[ReplicaMonitor | None, Depends(replica_monitor)]
