"""Bounded time: no call to PostgreSQL waits longer than the service allows, on its own clock.

Nothing on the server's side ends a wait for a server that does not answer at all (a stalled
disk, a paused machine, a hung pooler), nor bounds a read of the autocommit engine. So a read
not answered within DB_STATEMENT_TIMEOUT_MS, a write's statement not answered GRACE_S after its
own `statement_timeout` (database/engine.py), or a connection not made within
DB_CONNECT_TIMEOUT, is given up: psycopg2 closes the connection, the pool drops it, and the
request gets a 503. No cancel request is sent: libpq waits for the server to read it, which a
frozen server never does, and psycopg2 holds the GIL meanwhile (the whole worker would stop).
The mechanism is psycopg2's documented wait callback, waiting as `psycopg2.extras.wait_select`
does, with a deadline. It is process-wide, so `main.lifespan` installs it while the app serves
(`waiting_with_deadlines`); Alembic and scripts run psycopg2 as it runs by itself.
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

# Past a write transaction's own statement_timeout: time for the server's cancel to arrive, so
# that a server that is merely slow cancels first (57014) and the connection stays.
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


def connect_host_by_host(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
    """SQLAlchemy's `do_connect` event for a URL that lists several hosts (failover): each host
    in turn, as libpq would, each on a deadline of its own.

    With the wait callback, libpq connects asynchronously and leaves `connect_timeout` to the
    caller (libpq's docs, `PQconnectPoll`), so one deadline would cover the whole list: a first
    host that never answers (a machine gone, its packets dropped) would use all of it, and the
    next host would never be tried.
    """
    hosts = cparams["host"].split(",")
    ports = str(cparams.get("port", "")).split(",")  # one port for all, or one per host
    if len(ports) not in (1, len(hosts)):
        return None  # SQLAlchemy connects as usual, and libpq says what does not match
    errors = []
    for host, port in zip(hosts, ports * len(hosts) if len(ports) == 1 else ports, strict=True):
        params = {**cparams, "host": host, "port": port}
        if not port:
            del params["port"]  # libpq's default
        try:
            return dialect.connect(*cargs, **params)
        except psycopg2.OperationalError as exc:
            errors.append(f"{host}: {str(exc).strip()}")
    raise psycopg2.OperationalError("; ".join(errors))


@contextmanager
def waiting_with_deadlines(settings: Settings) -> Iterator[None]:
    """While the block runs, every psycopg2 call of this process waits with a deadline."""
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
