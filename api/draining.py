"""Draining: on SIGTERM, stop being ready for SHUTDOWN_DRAIN_S seconds before uvicorn stops.

uvicorn, on SIGTERM, closes its listening socket and every idle keep-alive connection at once,
then lets the requests in flight finish. A load balancer that keeps idle connections to the
instances (HAProxy does: deploy/haproxy.cfg) may be sending a request on one of them just as it
closes; it then sees the connection end without an answer, and the client's connection with it,
because a POST that may have reached the instance must not be sent again. With
SHUTDOWN_DRAIN_S set, SIGTERM first turns `/health/ready` to 503 while everything else is
served as before, for long enough that the balancer's health checks take the instance out;
only then does uvicorn's own shutdown begin, with nothing sent its way any more. A second
SIGTERM stops at once; SIGINT (Ctrl-C) is uvicorn's, as always.

An opt-in with process-wide state, like `database.event_loop.cooperation`: `main.lifespan`
installs it for as long as the app serves, and only where uvicorn's SIGTERM handler is there to
hand over to (uvicorn sets it with `signal.signal` in the main thread of each worker process for
the time it serves; a `TestClient` runs the app in another thread, and gets nothing).
"""

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from starlette.datastructures import State

logger = logging.getLogger("catalog")


def is_draining(state: State) -> bool:
    """Whether SIGTERM has come and this instance is on its way out (`/health/ready`: 503)."""
    return bool(getattr(state, "draining", False))


@contextmanager
def draining_on_sigterm(state: State, seconds: float) -> Iterator[None]:
    """While the block runs (the app serving), SIGTERM drains for `seconds`, then stops."""
    state.draining = False
    uvicorns = signal.getsignal(signal.SIGTERM)
    in_main_thread = threading.current_thread() is threading.main_thread()
    if seconds <= 0 or not callable(uvicorns) or not in_main_thread:
        yield
        return
    stop: Callable[[int, FrameType | None], Any] = uvicorns
    loop = asyncio.get_running_loop()

    def drain(signal_number: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, stop)  # a second SIGTERM: uvicorn's, at once
        # A signal handler may run between any two steps of the loop (or of logging): it only
        # hands the work to the loop, through the one call meant for threads and handlers.
        loop.call_soon_threadsafe(start_draining, signal_number, frame)

    def start_draining(signal_number: int, frame: FrameType | None) -> None:
        state.draining = True
        logger.warning(
            "SIGTERM: /health/ready answers 503 for %s s (SHUTDOWN_DRAIN_S), then shutting down",
            seconds,
        )
        loop.call_later(seconds, stop, signal_number, frame)

    signal.signal(signal.SIGTERM, drain)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is drain:
            signal.signal(signal.SIGTERM, stop)
