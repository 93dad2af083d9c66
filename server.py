"""The production server behind `python main.py`: granian serving `main:app`, every bound on.

It reads HOST, PORT, WEB_CONCURRENCY and the rest from the environment or `.env` (config.py),
and needs nothing prepared: it makes the directory where the workers keep their metrics
(fresh at every start, removed at exit), so `/metrics` adds up every worker. Why granian and
not uvicorn, measured side by side and attacked over raw sockets: bench/README.md, "Choosing
the HTTP server". Any ASGI server running `main:app` still works for development.
"""

import logging
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server import MPServer

from api.draining import DRAIN_FILE_VARIABLE
from api.logs import configure_logging
from config import MAX_HEADER_BYTES, Settings, get_settings

# A client that has not sent its whole request head by then is cut off.
HEADER_READ_TIMEOUT_MS = 10_000
# After SIGTERM (and SHUTDOWN_DRAIN_S), how long the requests in flight may take to finish.
WORKERS_KILL_TIMEOUT_S = 30

logger = logging.getLogger("catalog")


def build_server(settings: Settings, run_directory: Path) -> MPServer:
    """Granian for `main:app` with the contract's bounds and `settings.web_concurrency` workers."""
    # granian's worker processes (its `Granian` on this interpreter, which has the GIL).
    server = MPServer(
        "main:app",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.web_concurrency,
        http=HTTPModes.http1,
        websockets=False,
        # granian's HTTP/1 read buffer holds the request head: a head that does not fit is
        # refused (431) and its connection closed, never buffered whole.
        http1_settings=HTTP1Settings(
            header_read_timeout=HEADER_READ_TIMEOUT_MS, max_buffer_size=MAX_HEADER_BYTES
        ),
        log_level=LogLevels(settings.log_level),
        # The access line is the app's own (api/logs.py): it has the request id and route.
        log_access=False,
        # A worker that dies (killed, out of memory) is replaced; one that cannot start stops
        # the server instead of respawning forever (granian's crash-loop check).
        respawn_failed_workers=True,
        workers_kill_timeout=WORKERS_KILL_TIMEOUT_S,
    )
    if settings.shutdown_drain_s > 0:
        server.on_startup(lambda: _drain_first_on_sigterm(settings, run_directory / "draining"))
    return server


def _drain_first_on_sigterm(settings: Settings, drain_file: Path) -> None:
    """SIGTERM makes every worker's `/health/ready` 503 for SHUTDOWN_DRAIN_S, then stops
    (api/draining.py). Granian has set its own handler before its start-up hooks run: this one
    wraps it; a second SIGTERM stops at once."""
    stop: Callable[[int, FrameType | None], Any] = signal.getsignal(signal.SIGTERM)  # type: ignore[assignment]

    def drain(signal_number: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, stop)
        drain_file.touch()
        logger.warning(
            "SIGTERM: /health/ready answers 503 for %s s (SHUTDOWN_DRAIN_S), then shutting down",
            settings.shutdown_drain_s,
        )
        threading.Timer(settings.shutdown_drain_s, stop, (signal_number, frame)).start()

    signal.signal(signal.SIGTERM, drain)


def serve() -> None:
    """Serve until SIGTERM or SIGINT, with a run directory of its own, removed at exit. The
    workers inherit the environment set here before they start: where they keep their metrics
    (prometheus_client's multiprocess mode) and where draining is announced."""
    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="catalog-") as run_directory:
        directory = Path(run_directory)
        # The workers' metrics: in PROMETHEUS_MULTIPROC_DIR if it names one (emptied of an
        # earlier run's files, which would count on; api/metrics.py has checked it exists).
        metrics = directory / "metrics"
        if named := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            metrics = Path(named)
            for stale in metrics.glob("*.db"):
                stale.unlink()
        else:
            metrics.mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
        os.environ[DRAIN_FILE_VARIABLE] = str(directory / "draining")
        server = build_server(settings, directory)
        configure_logging(settings)  # after MPServer(), which configures its loggers: ours win
        server.serve()


if __name__ == "__main__":
    serve()
