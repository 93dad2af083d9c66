"""Logging: one line per request, the request id on every record, text or JSON lines."""

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from config import Settings

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

# Attributes every LogRecord has; anything else on a record came in through `extra=`, but for
# uvicorn's `color_message` (its message again, with terminal colour codes).
_NOT_EXTRAS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "request_id",
    "color_message",
}
# The servers' loggers for their own lines: start-up, shutdown, errors. granian's (production,
# server.py) and uvicorn's (development); their access logs are replaced by ours.
_SERVER_LOGGERS = ("_granian", "uvicorn", "uvicorn.error", "uvicorn.asgi")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def _add_request_id(record: logging.LogRecord) -> bool:
    record.request_id = request_id_var.get()
    return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        entry.update((key, value) for key, value in vars(record).items() if key not in _NOT_EXTRAS)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_add_request_id)  # a filter may be a function (the logging docs)
    handler.setFormatter(
        JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    # The logging HOWTO's "Optimization" table: skip collecting what no formatter here prints
    # (caller's file and line, thread, process), on every record (bench/README.md, "Settings
    # measured earlier").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # The servers give their loggers handlers of their own (plain text, not propagating) before
    # they import the app: take them over, so that every line has this format, however the
    # server was started. Their levels stay the server's (`--log-level`).
    for name in _SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    # Warnings too, which Python would otherwise print as plain text.
    logging.captureWarnings(True)
    # Our access line (api.context) replaces uvicorn's: it has the request id and route.
    logging.getLogger("uvicorn.access").disabled = True
    # Readiness asks alembic which revision the database is at (crud.health), and alembic says
    # at INFO which dialect it works with each time: useful once in `alembic upgrade` (its own
    # process, its own logging), noise here on every health check.
    logging.getLogger("alembic").setLevel(logging.WARNING)
