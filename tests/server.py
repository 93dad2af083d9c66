"""The service as a real uvicorn process, for tests that need true concurrency and commits."""

import os
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
from typing import IO, TypeVar

import httpx
from sqlalchemy import create_engine

from config import PROJECT_DIR, normalize_database_url
from tests.databases import ON_POSTGRES, fresh_postgres_database, upgrade

T = TypeVar("T")

# What README's production command adds to `uvicorn main:app` (main.MAX_HEADER_BYTES).
PRODUCTION_FLAGS = ("--http", "h11", "--h11-max-incomplete-event-size", "65536")


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


def uvicorn_arguments(port: int, *, workers: str = "1") -> list[str]:
    """`python`'s arguments for the README's production command on 127.0.0.1:`port`."""
    return [
        "-m",
        "uvicorn",
        "main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        workers,
        *PRODUCTION_FLAGS,
    ]


@contextmanager
def service_process(
    database_url: str, *, command: str = "uvicorn main:app", workers: str = "1", **settings: str
) -> Iterator[Service]:
    """Start the service against `database_url` with extra settings; stop it after.

    `command` is how: `uvicorn main:app` with the production command's flags and `workers`
    worker processes (a string, like the settings), or `python main.py`.
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
        "uvicorn main:app": uvicorn_arguments(port, workers=workers),
        "python main.py": ["main.py"],  # HOST and PORT from the environment
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
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def running_service(database_url: str, **settings: str) -> Iterator[str]:
    """Start `uvicorn main:app` against `database_url`; yield its base URL; stop it after."""
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
