"""Bounded time: no call to PostgreSQL waits longer than the service allows, on the client's side.

A statement that runs longer than DB_STATEMENT_TIMEOUT_MS is cancelled, as PostgreSQL's own
`statement_timeout` would cancel it (the request gets 503, `57014 query_canceled`), but the
clock is ours: it holds for the reads of the autocommit engine (which have no transaction to
`SET LOCAL` a setting in), through PgBouncer in transaction mode (which forwards the cancel),
and for a `COMMIT` waiting on a synchronous standby. A connection still being set up gives up
after DB_CONNECT_TIMEOUT.

The mechanism is psycopg2's documented wait callback (`psycopg2.extensions.set_wait_callback`,
"support for coroutine libraries"): with one installed, psycopg2 calls it whenever libpq would
block, and it waits as `psycopg2.extras.wait_select` does, with a deadline. It is process-wide,
so `main.lifespan` installs it while the app serves (`waiting_with_deadlines`); Alembic and
scripts run psycopg2 as it runs by itself.
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

_EVENTS = {POLL_READ: select.POLLIN, POLL_WRITE: select.POLLOUT}


def _ready(fileno: int, state: int, timeout: float | None) -> bool:
    """Wait until libpq can go on; False if `timeout` seconds passed first."""
    poller = select.poll()  # not select.select(): that fails on descriptors above 1023
    poller.register(fileno, _EVENTS[state])
    return bool(poller.poll(None if timeout is None else max(timeout, 0) * 1000))


def wait_with_deadline(connection: Any, *, statement_s: float, connect_s: float) -> None:
    """psycopg2's wait callback: `wait_select`, with DB_CONNECT_TIMEOUT while connecting and
    DB_STATEMENT_TIMEOUT_MS (0: none) for a statement, which is then cancelled."""
    connecting = connection.status == STATUS_SETUP
    limit = connect_s if connecting else statement_s
    deadline = time.monotonic() + limit if limit > 0 else None
    while True:
        state = connection.poll()
        if state == POLL_OK:
            return
        if state not in _EVENTS:
            raise psycopg2.OperationalError(f"bad state from poll: {state}")
        timeout = None if deadline is None else deadline - time.monotonic()
        if _ready(connection.fileno(), state, timeout):
            continue
        if connecting:
            raise psycopg2.OperationalError("timeout expired while connecting to the server")
        # As the server's statement_timeout would: it answers the statement with 57014.
        connection.cancel()
        deadline = None


@contextmanager
def waiting_with_deadlines(settings: Settings) -> Iterator[None]:
    """While the block runs, every psycopg2 call of this process waits with a deadline."""
    callback = functools.partial(
        wait_with_deadline,
        statement_s=settings.db_statement_timeout_ms / 1000,
        connect_s=max(settings.db_connect_timeout, 2),  # libpq's own minimum is 2 s
    )
    previous = psycopg2.extensions.get_wait_callback()  # a test may serve two apps at once
    psycopg2.extensions.set_wait_callback(callback)
    try:
        yield
    finally:
        psycopg2.extensions.set_wait_callback(previous)
