"""Reads from a streaming replica (DATABASE_READ_URL), and the tokens that keep them consistent.

Installed by one line of `main.py` (`install_replica`), only when a replica is configured:
without one, no request passes through anything here. With one, `Replica.read_session` replaces
the read session dependency (through `dependency_overrides`, as the tests swap sessions), every
2xx answer to a write carries a `Consistency-Token`, and the replica never causes an error
answer: docs/scaling.md, "Read replicas".
"""

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, HTTPException, Request
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import register_pool_metrics
from config import Settings
from database.engine import build_engine
from database.replica import ReplicaMonitor, format_lsn, parse_lsn, primary_position
from database.session import ReadSessionLocal
from dependencies.database import ReadSession, get_read_session

HEADER = "Consistency-Token"
# In a request's scope state once the replica failed it: its reads then go to the primary.
FROM_PRIMARY = "read_from_primary"

logger = logging.getLogger("catalog.replica")


class ReplicaFailed(Exception):
    """The replica failed a statement of a read: answer it again, from the primary."""


def requested_token(request: Request) -> int | None:
    """The WAL position a read must see (None: no token); 400 unless sent once, well formed."""
    values = request.headers.getlist(HEADER)
    lsn = parse_lsn(values[0].strip()) if len(values) == 1 else None
    if values and lsn is None:
        raise HTTPException(
            status_code=400,
            detail=f"{HEADER} must be sent once, as the {HEADER} of a write's answer"
            " (e.g. 0/1A2B3C4D)",
        )
    return lsn


def primary_wal_position() -> int:
    """The primary's WAL position now, on the primary's read pool: asked after a write has
    committed, it is at or past that write's commit record."""
    with ReadSessionLocal() as session:
        return primary_position(session.connection())


@dataclass(frozen=True)
class Replica:
    """The replica's engine and monitor, and the read sessions they decide."""

    engine: Engine
    monitor: ReplicaMonitor

    def read_session(self, request: Request) -> Iterator[ReadSession]:
        """The read session dependency, with a replica: on it when it may serve the read."""
        if request.scope.get("state", {}).get(FROM_PRIMARY) or not self.monitor.serves(
            requested_token(request)  # a malformed token: 400 here
        ):
            yield from get_read_session()
            return
        session = ReadSessionLocal(bind=self.engine)  # the read sessions' options, on the replica
        try:
            session.connection()
        except (DBAPIError, PoolTimeoutError) as exc:
            session.close()
            logger.warning("replica unavailable, reading from the primary: %s", exc)
            self.monitor.mark_down()
            yield from get_read_session()
            return
        with session:
            try:
                yield ReadSession(session)
            except DBAPIError as exc:
                logger.warning("the replica failed a read, reading from the primary: %s", exc)
                if exc.connection_invalidated:
                    self.monitor.mark_down()
                raise ReplicaFailed() from exc


class ReplicaMiddleware:
    """Every 2xx answer to a write carries a `Consistency-Token`, and a read that the replica
    failed part-way (`ReplicaFailed`) is answered again, from the primary.

    The token is the primary's WAL position asked for once the route has returned, so after the
    write's commit (the session dependency commits before the answer is sent); replays get a
    fresh token, which is past the kept write too. When the primary cannot answer, the committed
    write goes without one (a read sees it once the replica has it, or DB_REPLICA_MAX_LAG_S
    later at most). A `GET` or `HEAD` may run again: it has no body, changes nothing, and
    nothing of the first attempt was sent (the error left the route before any answer).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
        elif scope["method"] in ("GET", "HEAD"):
            try:
                await self.app(scope, receive, send)
            except ReplicaFailed:
                scope.setdefault("state", {})[FROM_PRIMARY] = True
                await self.app(scope, _no_body, send)
        else:
            await self.app(scope, receive, functools.partial(_send_with_token, send))


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send_with_token(send: Send, message: Message) -> None:
    if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
        try:
            token = format_lsn(await run_in_threadpool(primary_wal_position))
        except SQLAlchemyError as exc:
            logger.warning("a write answered without %s: %s", HEADER, exc)
        else:
            header = (HEADER.lower().encode(), token.encode())
            message = {**message, "headers": [*message.get("headers", ()), header]}
    await send(message)


def install_replica(app: FastAPI, settings: Settings) -> None:
    """Serve reads from DATABASE_READ_URL's replica, if one is configured."""
    if settings.database_read_url is None:
        return
    # The monitor's own engines, one autocommit connection to each server.
    one_connection = settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0})
    monitor = ReplicaMonitor(
        build_engine(settings.database_url, one_connection, autocommit=True),
        build_engine(settings.database_read_url, one_connection, autocommit=True),
        max_lag_s=settings.db_replica_max_lag_s,
        interval_s=settings.db_replica_check_interval_s,
    )
    replica = Replica(build_engine(settings.database_read_url, settings, autocommit=True), monitor)
    app.state.replica_monitor = monitor
    app.dependency_overrides[get_read_session] = replica.read_session
    # Inside the request context: a read answered again has one request id and access line.
    app.add_middleware(ReplicaMiddleware)
    register_pool_metrics(replica.engine, pool="replica")
    serving = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with serving(app):
            await asyncio.to_thread(monitor.sample)  # so the first reads know where to go
            task = asyncio.create_task(monitor.run(), name="replica monitor")
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                for engine in (monitor.primary, monitor.replica, replica.engine):
                    engine.dispose()

    app.router.lifespan_context = lifespan
