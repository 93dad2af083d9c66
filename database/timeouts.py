"""Bounded time: no call to PostgreSQL waits longer than the service allows, on its own clock.

PostgreSQL's own timeouts (`SET LOCAL`, database/engine.py) cannot end a wait for a server that
does not answer at all (a stalled disk, a paused machine, a hung pooler), nor bound a read on
the autocommit engine. So a read not answered within DB_STATEMENT_TIMEOUT_MS, a write's
statement not answered GRACE_S later (a merely slow server cancels it first: 57014), or a
connection not made within DB_CONNECT_TIMEOUT is given up: the request gets a 503.

The mechanism is psycopg2's documented wait callback (`set_wait_callback`), waiting as
`psycopg2.extras.wait_select` does, with a deadline. Giving up closes the connection (the pool
drops it); no cancel request is sent, as libpq would wait for a frozen server to read it. The
callback is process-wide: `main.lifespan` installs it while the app serves.
"""

import functools
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
from psycopg2.extensions import POLL_OK, POLL_READ, POLL_WRITE, STATUS_SETUP

from config import Settings

# Past a write transaction's own statement_timeout: time for the server's cancel to arrive.
GRACE_S = 2.0

_EVENTS = {POLL_READ: select.POLLIN, POLL_WRITE: select.POLLOUT}


def wait_with_deadline(connection: Any, *, statement_s: float | None, connect_s: float) -> None:
    """psycopg2's wait callback: `wait_select`, giving up after `connect_s` while connecting,
    `statement_s` (None: never) for a read and GRACE_S more in a transaction."""
    connecting = connection.status == STATUS_SETUP
    if connecting:
        limit: float | None = connect_s
    elif statement_s is None or connection.autocommit:
        limit = statement_s
    else:
        limit = statement_s + GRACE_S
    deadline = None if limit is None else time.monotonic() + limit
    while True:
        state = connection.poll()
        if state == POLL_OK:
            return
        if state not in _EVENTS:
            raise psycopg2.OperationalError(f"bad state from poll: {state}")
        poller = select.poll()  # not select.select(): that fails on descriptors above 1023
        poller.register(connection.fileno(), _EVENTS[state])
        timeout = None if deadline is None else max(deadline - time.monotonic(), 0) * 1000
        if not poller.poll(timeout):
            what = "connecting to the server" if connecting else "waiting for the server"
            raise psycopg2.OperationalError(f"timeout expired after {limit:g} s {what}")


@contextmanager
def waiting_with_deadlines(settings: Settings) -> Iterator[None]:
    statement_ms = settings.db_statement_timeout_ms
    callback = functools.partial(
        wait_with_deadline,
        statement_s=statement_ms / 1000 if statement_ms else None,
        connect_s=max(settings.db_connect_timeout, 2),  # libpq's own minimum is 2 s
    )
    previous = psycopg2.extensions.get_wait_callback()  # a test may serve two apps at once
    psycopg2.extensions.set_wait_callback(callback)
    try:
        yield
    finally:
        psycopg2.extensions.set_wait_callback(previous)
