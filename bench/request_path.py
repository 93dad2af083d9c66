"""Functions per request: .venv/bin/python bench/request_path.py [--list] [--database-url URL]"""

import argparse
import os
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PROJECT_DIR = Path(__file__).resolve().parent.parent
# The project's own code is everything under PROJECT_DIR but these: the test suite, the
# benchmarks (this script included), the migrations and the installed packages.
EXCLUDED_DIRS = {"tests", "bench", "alembic", ".venv"}

# (file, qualified name, first line): one function, even if two have equal code objects.
FunctionKey = tuple[str, str, int]


@dataclass
class Recorder:
    """A profile function for every thread that records what runs while `recording` is set."""

    recording: bool = False
    seen: set[FunctionKey] = field(default_factory=set)

    def profile(self, frame: FrameType, event: str, _arg: Any) -> None:
        # 'call' is a Python function entered (or a generator or coroutine resumed); the
        # c_call/return events are not functions of the project's. The key is built here and
        # filtered afterwards: as little work as possible in a hook that sees every call.
        if event == "call" and self.recording:
            code = frame.f_code
            self.seen.add((code.co_filename, code.co_qualname, code.co_firstlineno))

    @contextmanager
    def measuring(self) -> Iterator[set[FunctionKey]]:
        self.seen = set()
        self.recording = True
        try:
            yield self.seen
        finally:
            self.recording = False


def project_file(filename: str) -> str | None:
    """`filename` relative to the project if it is the project's own code, else None."""
    if filename.startswith("<"):  # <frozen ...>, <string>: code made at run time
        return None
    try:
        relative = Path(filename).resolve().relative_to(PROJECT_DIR)
    except ValueError:
        return None
    if relative.parts[0] in EXCLUDED_DIRS:
        return None
    return relative.as_posix()


def own_functions(seen: set[FunctionKey]) -> dict[str, list[tuple[int, str]]]:
    """The project's functions in `seen`: file -> [(first line, qualified name)], sorted."""
    by_file: dict[str, list[tuple[int, str]]] = {}
    for filename, qualname, first_line in seen:
        relative = project_file(filename)
        if relative is not None:
            by_file.setdefault(relative, []).append((first_line, qualname))
    return {name: sorted(functions) for name, functions in sorted(by_file.items())}


@contextmanager
def database(url: str | None) -> Iterator[str]:
    """The database URL for the run: a fresh PostgreSQL database beside `url`'s (dropped after),
    `url` itself if it is another kind, or a SQLite file in a temporary directory."""
    if url is None:
        with tempfile.TemporaryDirectory(prefix="request_path_") as directory:
            yield f"sqlite:///{directory}/request_path.db"
        return
    # config's normalizer pins postgresql:// to psycopg2, the service's driver.
    from config import normalize_database_url

    base = make_url(normalize_database_url(url))
    if base.get_backend_name() != "postgresql":
        yield base.render_as_string(hide_password=False)
        return
    name = f"request_path_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                # FORCE: the app's pool may still hold connections if it failed mid-run.
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def migrate() -> None:
    """Bring DATABASE_URL to the head revision the way the service's own migrations run."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(PROJECT_DIR / "alembic.ini"))
    # alembic.ini's logging set-up would replace the app's own logging configuration.
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


def scenarios(api_key: str | None) -> list[tuple[str, Callable[[TestClient, int], Response]]]:
    """Each scenario: its label and a request of its kind; the int makes each one fresh."""
    write_headers = {"X-API-Key": api_key} if api_key else {}
    product_id: list[int] = []

    def get_one(client: TestClient, _number: int) -> Response:
        if not product_id:  # one product to read, made before the warm-up
            created = checked(
                client.post(
                    "/products", json={"name": "Widget", "price": 9.99}, headers=write_headers
                ),
                "POST /products",
            )
            product_id.append(created.json()["id"])
        return client.get(f"/products/{product_id[0]}")

    def post(client: TestClient, number: int) -> Response:
        body = {"name": f"Widget {number}", "price": 9.99}
        return client.post("/products", json=body, headers=write_headers)

    def post_keyed(client: TestClient, number: int) -> Response:
        body = {"name": f"Keyed widget {number}", "price": 9.99}
        headers = {**write_headers, "Idempotency-Key": f"request-path-{uuid.uuid4()}"}
        return client.post("/products", json=body, headers=headers)

    return [
        ("GET /products/{id}", get_one),
        ("POST /products", post),
        ("POST /products + Idempotency-Key", post_keyed),
    ]


def checked(response: Response, label: str) -> Response:
    # An error answer takes another path through the app: it would be no figure for the
    # scenario, so the run stops instead of counting it.
    if response.status_code >= 300:
        sys.exit(f"{label} answered {response.status_code}: {response.text[:300]}")
    return response


def main() -> None:
    parser = argparse.ArgumentParser(
        description="How many distinct functions of the project's own one request runs."
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL: a fresh database is made beside this one and dropped after"
        " (default: SQLite in a temporary directory)",
    )
    parser.add_argument("--list", action="store_true", help="list each scenario's functions")
    args = parser.parse_args()

    # The service runs from its own directory: its modules, and its .env, are found there.
    os.chdir(PROJECT_DIR)
    sys.path.insert(0, str(PROJECT_DIR))

    # Installed before anything of the app's is imported or started. Python 3.11 has no
    # threading.setprofile_all_threads: a thread gets the hook only if it starts after
    # threading.setprofile, and TestClient's event-loop thread starts on entering its context,
    # anyio's worker threads on first use. Recording is off until the measured request, so
    # start-up and warm-up cost only the hook's call. Greenlets (routes run on the event loop
    # on PostgreSQL) share their thread's profile function.
    recorder = Recorder()
    sys.setprofile(recorder.profile)
    threading.setprofile(recorder.profile)
    try:
        rows = run(args.database_url, recorder)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)

    print(f"{'scenario':<34}{'functions':>10}{'files':>7}")
    for label, functions in rows:
        total = sum(len(names) for names in functions.values())
        print(f"{label:<34}{total:>10}{len(functions):>7}")
    if args.list:
        for label, functions in rows:
            print(f"\n{label}")
            for filename, names in functions.items():
                print(f"  {filename} ({len(names)})")
                for _line, qualname in names:
                    print(f"    {filename}:{qualname}")


def run(
    database_url: str | None, recorder: Recorder
) -> list[tuple[str, dict[str, list[tuple[int, str]]]]]:
    with database(database_url) as url:
        # Before main is imported: its settings, engine and pool are made at import time.
        os.environ["DATABASE_URL"] = url
        migrate()
        from main import app

        # Writes need a key when API_KEYS is set in the environment: send the first one.
        keys = [key.strip() for key in os.environ.get("API_KEYS", "").split(",")]
        api_key = next((key for key in keys if key), None)
        rows = []
        # The with block runs the app's lifespan (start-up and shut-down), as a server would.
        with TestClient(app) as client:
            for number, (label, request) in enumerate(scenarios(api_key)):
                # Warm-up: the same kind of request first, so that lazy imports, compiled
                # statements and first connections are not counted as the request's path.
                checked(request(client, 2 * number), f"{label} (warm-up)")
                with recorder.measuring() as seen:
                    response = request(client, 2 * number + 1)
                checked(response, label)
                rows.append((label, own_functions(seen)))
        return rows


if __name__ == "__main__":
    main()
