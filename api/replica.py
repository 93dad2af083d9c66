"""Reads from a streaming replica (DATABASE_READ_URL), and the tokens that keep them consistent.

Installed by `install_replica`, only with a replica configured. `GET`s read from the replica
when `ReplicaMonitor.serves` them, else from the primary (the read session dependency is
swapped through `dependency_overrides`). Every 2xx write answer carries a `Consistency-Token`.
The replica never causes an error answer: one that cannot give a connection is marked down and
the read goes to the primary; one that fails a statement part-way has the request answered
again, from the primary (`ReplicaFallbackMiddleware`).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import register_pool_metrics
from config import Settings
from database.engine import build_engine
from database.replica import (
    ReplicaMonitor,
    build_monitor,
    format_lsn,
    parse_lsn,
    primary_position,
)
from database.session import ReadSessionLocal
from dependencies.database import ReadSession, get_read_session

HEADER = "Consistency-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# In a request's scope state once the replica failed it: its reads then go to the primary.
FROM_PRIMARY = "read_from_primary"

logger = logging.getLogger("catalog.replica")


class ReplicaFailed(Exception):
    """The replica failed a statement of a read: answer it again, from the primary."""


def requested_token(request: Request) -> int | None:
    """The WAL position a read must see (None: no token); 400 unless sent once, well formed."""
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    lsn = parse_lsn(values[0].strip()) if len(values) == 1 else None
    if lsn is None:
        raise HTTPException(
            status_code=400,
            detail=f"{HEADER} must be sent once, as the {HEADER} of a write's answer"
            " (e.g. 0/1A2B3C4D)",
        )
    return lsn


def primary_wal_position() -> int:
    with ReadSessionLocal() as session:
        return primary_position(session.connection())


class Replica:
    def __init__(self, engine: Engine, monitor: ReplicaMonitor) -> None:
        self.engine, self.monitor = engine, monitor
        self.sessions = sessionmaker(bind=engine, autoflush=False, expire_on_commit=False)

    def read_session(self, request: Request) -> Iterator[ReadSession]:
        if request.scope.get("state", {}).get(FROM_PRIMARY) or not self.monitor.serves(
            requested_token(request)  # a malformed token: 400 here
        ):
            yield from get_read_session()
            return
        session = self.sessions()
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

    @asynccontextmanager
    async def sampling(self) -> AsyncIterator[None]:
        await self.monitor.sample()  # the first reads already know where they may go
        task = asyncio.create_task(self.monitor.run(), name="replica monitor")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.monitor.dispose()
            self.engine.dispose()


class ConsistencyTokenMiddleware:
    """Every 2xx answer to a write carries a `Consistency-Token`: the primary's WAL position
    once the route has returned, so after the write's commit (a replay's too). When the
    primary cannot say, the committed write's answer goes without one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _SAFE_METHODS:
            await self.app(scope, receive, send)
            return

        async def send_with_token(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                try:
                    token = format_lsn(await run_in_threadpool(primary_wal_position))
                except SQLAlchemyError as exc:
                    logger.warning("a write answered without %s: %s", HEADER, exc)
                else:
                    header = (HEADER.lower().encode(), token.encode())
                    message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        await self.app(scope, receive, send_with_token)


class ReplicaFallbackMiddleware:
    """A read that the replica failed part-way (`ReplicaFailed`) is answered again, from the
    primary: a `GET` or `HEAD` changes nothing, and nothing of the first attempt was sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except ReplicaFailed:
            scope.setdefault("state", {})[FROM_PRIMARY] = True

            async def no_body() -> Message:
                return {"type": "http.request", "body": b"", "more_body": False}

            await self.app(scope, no_body, send)


def install_replica(app: FastAPI, settings: Settings) -> None:
    monitor = build_monitor(settings)
    if settings.database_read_url is None or monitor is None:
        return
    replica = Replica(build_engine(settings.database_read_url, settings, autocommit=True), monitor)
    app.state.replica_monitor = replica.monitor
    app.dependency_overrides[get_read_session] = replica.read_session
    # Inside the request context: a read answered again has one request id and access line.
    app.add_middleware(ReplicaFallbackMiddleware)
    app.add_middleware(ConsistencyTokenMiddleware)
    register_pool_metrics(replica.engine, pool="replica")
    serving = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with serving(app), replica.sampling():
            yield

    app.router.lifespan_context = lifespan
