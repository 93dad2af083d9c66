"""The service as a real server process, started as production starts it (`python main.py`),
for tests that need true concurrency, commits and the HTTP server's own behaviour."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
from sqlalchemy import create_engine, text

from config import PROJECT_DIR, normalize_database_url
from tests.databases import ON_POSTGRES, fresh_postgres_database, upgrade

T = TypeVar("T")

# The production entry point, as README runs it.
PRODUCTION_COMMAND = ("main.py",)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def migrate(database_url: str) -> None:
    engine = create_engine(normalize_database_url(database_url))
    with engine.begin() as connection:
        upgrade(connection)
    engine.dispose()


@contextmanager
def migrated_database(name: str, directory: Path) -> Iterator[str]:
    """A fresh, migrated database of this run's kind, for a real server: a PostgreSQL database
    of its own (TEST_DATABASE_URL set), otherwise a SQLite file in `directory`."""
    if ON_POSTGRES:
        with fresh_postgres_database(f"catalog_{name}") as url:
            migrate(url)
            yield url
    else:
        url = f"sqlite:///{directory / f'{name}.db'}"
        migrate(url)
        yield url


@dataclass
class Service:
    base_url: str
    process: subprocess.Popen[str]
    log: IO[str]

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def kill(self) -> None:
        """SIGKILL the whole instance, its server process and every worker, as the machine or
        a container's end would (the server's process alone would leave its workers serving)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


@contextmanager
def service_process(
    database_url: str, *, command: str = "python main.py", **settings: str
) -> Iterator[Service]:
    """Start the service against `database_url` with extra settings; stop it after.

    `command` is how: `python main.py`, the production entry point (WEB_CONCURRENCY and every
    other setting from `settings`), or `uvicorn main:app`, a development server.
    """
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "warning",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        **{name.upper(): value for name, value in settings.items()},
    }
    arguments = {
        "python main.py": list(PRODUCTION_COMMAND),
        "uvicorn main:app": [
            "-m",
            "uvicorn",
            "main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
    }[command]
    # The log goes to a file, not a pipe: a pipe nobody reads fills up and blocks the server.
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(
            [sys.executable, *arguments],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            # A process group of its own: whatever happens to it, nothing it started outlives it.
            start_new_session=True,
        )
        service = Service(f"http://127.0.0.1:{port}", process, log)
        try:
            _wait_until_up(service.base_url, process, log)
            yield service
        finally:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=15)
            finally:
                service.kill()  # a worker still running, or a server that did not stop
                process.wait()


@contextmanager
def running_service(database_url: str, **settings: str) -> Iterator[str]:
    """Start the service against `database_url`; yield its base URL; stop it after."""
    with service_process(database_url, **settings) as service:
        yield service.base_url


def _wait_until_up(base_url: str, process: subprocess.Popen[str], log: IO[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            raise RuntimeError(f"the service did not start:\n{log.read()}")
        time.sleep(0.1)


def all_at_once(count: int, call: Callable[[int], T]) -> list[T]:
    """Run `call(i)` for i in range(count) on `count` threads released together by a barrier."""
    barrier = threading.Barrier(count)

    def run(index: int) -> T:
        barrier.wait()
        return call(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def query(database_url: str, sql: str, **parameters: Any) -> list[Any]:
    """The rows of `sql` on a connection of its own (what the database holds, not the service)."""
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql), parameters).all())
    finally:
        engine.dispose()


def create_until_stopped(
    base_url: str, number: int, stop: threading.Event, acknowledged: list[dict[str, Any]]
) -> None:
    """POST products one after the other until `stop` (or the server is gone); each one
    answered 201 goes into `acknowledged`."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for index in range(10_000):
            if stop.is_set():
                return
            try:
                response = client.post(
                    "/products", json={"name": f"Stream {number}-{index}", "price": 3}
                )
            except httpx.TransportError:
                return  # the server is gone: this write was never acknowledged
            if response.status_code == 201:
                acknowledged.append(response.json())
