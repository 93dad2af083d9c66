"""The service's image, run as a user would run it: `alembic upgrade head` as a one-off, then the
production entry point with WEB_CONCURRENCY=2 against the host's PostgreSQL (--network=host, a
free port), as a non-root user, healthy by its own HEALTHCHECK, and stopped by `podman stop`
(SIGTERM): the requests in flight finish and the container exits 0."""

import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from crud.health import required_revision
from tests.container.conftest import MEASURED, wait_for
from tests.container.podman import Podman
from tests.server import create_until_stopped, free_port, query

MAX_IMAGE_BYTES = 350_000_000
WORKERS = 2


@dataclass
class Container:
    podman: Podman
    name: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        result = self.podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def state(self, field: str) -> str:
        template = f"{{{{.State.{field}}}}}"
        return self.podman("inspect", "--format", template, self.name).stdout.strip()

    def assert_running(self) -> None:
        status = self.state("Status")
        if status != "running":
            raise AssertionError(
                f"{self.name} is {status} (exit code {self.state('ExitCode')}):\n"
                f"{self.logs()[-4000:]}"
            )

    def wait_for_log(self, line: str, timeout: float = 60) -> None:
        """Until `line` is in the log; fails if the container ends first. While `podman stop`
        waits for it, it is "stopping", not running."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.state("Status")  # before the log: if it had ended, the log is whole
            logs = self.logs()
            if line in logs:
                return
            if status not in {"running", "stopping"}:
                raise AssertionError(f"{self.name} is {status}, no {line!r}:\n{logs[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {line!r} in {timeout} s:\n{logs[-4000:]}")
            time.sleep(0.1)


@contextmanager
def running_container(podman: Podman, image: str, database_url: str) -> Iterator[Container]:
    """The image's own command (`python main.py`) with WEB_CONCURRENCY=2 on a free port of the
    host's network, serving; removed after. HOST stays the image's (0.0.0.0)."""
    container = Container(podman, f"catalog-test-{uuid.uuid4().hex[:8]}", free_port())
    started = time.monotonic()
    podman(
        "run",
        "--detach",
        "--name",
        container.name,
        "--network=host",
        "--env",
        f"DATABASE_URL={database_url}",
        "--env",
        f"PORT={container.port}",
        "--env",
        f"WEB_CONCURRENCY={WORKERS}",
        image,
    )
    try:
        wait_for(f"{container.base_url}/health", alive=container.assert_running)
        MEASURED["container start to first 200 on /health"] = (
            f"{time.monotonic() - started:.1f} s (`podman run`, WEB_CONCURRENCY={WORKERS})"
        )
        # granian stops a worker that SIGTERM reaches while it is still starting only at its
        # kill timeout (tests/api/test_logs.py): every worker is up before the tests go on.
        for worker in range(1, WORKERS + 1):
            container.wait_for_log(f"Started worker-{worker}")
        yield container
    finally:
        podman("rm", "--force", "--time", "10", container.name, check=False)


@pytest.fixture(scope="module")
def migrated_database(podman: Podman, app_image: str, host_database: str) -> str:
    """The fresh database, migrated by the image as a one-off command."""
    podman(
        "run",
        "--rm",
        "--network=host",
        "--env",
        f"DATABASE_URL={host_database}",
        app_image,
        "alembic",
        "upgrade",
        "head",
    )
    return host_database


@pytest.fixture(scope="module")
def service(podman: Podman, app_image: str, migrated_database: str) -> Iterator[Container]:
    with running_container(podman, app_image, migrated_database) as container:
        yield container


def test_the_image_is_under_350_mb(podman: Podman, app_image: str) -> None:
    size = int(podman("image", "inspect", "--format", "{{.Size}}", app_image).stdout)
    assert size < MAX_IMAGE_BYTES, f"{size / 1e6:.0f} MB"


def test_alembic_upgrade_head_runs_from_the_image_as_a_one_off(migrated_database: str) -> None:
    rows = query(migrated_database, "SELECT version_num FROM alembic_version")
    assert [row.version_num for row in rows] == [required_revision()]


def test_it_serves_with_web_concurrency_workers(podman: Podman, service: Container) -> None:
    assert httpx.get(f"{service.base_url}/health/ready").status_code == 200
    processes = podman("top", service.name, "pid", "ppid", "args").stdout.splitlines()[1:]
    workers = [line for line in processes if line.split()[1] == "1"]
    assert len(workers) == WORKERS, processes


def test_a_product_created_is_read_back(service: Container) -> None:
    body = {"sku": "MUG-CONTAINER", "name": "Container mug", "price": 8.5, "quantity": 3}
    with httpx.Client(base_url=service.base_url, timeout=10) as client:
        created = client.post("/products", json=body)
        assert created.status_code == 201, created.text
        read = client.get(created.headers["location"])
    assert read.status_code == 200
    assert read.json() == created.json()
    assert {key: read.json()[key] for key in body} == body


def test_it_runs_as_a_non_root_user_with_python_as_pid_1(
    podman: Podman, service: Container
) -> None:
    uid = podman("exec", service.name, "id", "-u").stdout.strip()
    assert uid != "0"
    processes = podman("top", service.name, "user", "pid", "args").stdout.splitlines()[1:]
    assert all(line.split()[0] != "root" for line in processes), processes
    # Exec form, no shell: PID 1 is python itself (main.py exec'd server.py), so SIGTERM is its.
    first = next(line.split() for line in processes if line.split()[1] == "1")
    assert first[2].endswith(("/python", "/python3")) and first[3].endswith("server.py"), first


def test_its_healthcheck_passes(podman: Podman, service: Container) -> None:
    # No systemd here runs podman's health timers: run the image's HEALTHCHECK by hand.
    assert podman("healthcheck", "run", service.name, check=False).returncode == 0


def _post_slowly(port: int, body: bytes, between: threading.Event) -> tuple[int, dict[str, Any]]:
    """POST /products over a raw connection: the head and part of the body, then wait for
    `between`, then the rest. Returns the status and the JSON body of the answer."""
    head = (
        f"POST /products HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(head + body[:10])
        between.wait(timeout=30)
        connection.sendall(body[10:])
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(payload)


def test_sigterm_lets_requests_in_flight_finish_and_the_container_exits_0(
    podman: Podman, app_image: str, migrated_database: str
) -> None:
    acknowledged: list[dict[str, Any]] = []
    stop = threading.Event()

    sigterm_sent = threading.Event()
    slow_body = json.dumps({"name": "In flight at SIGTERM", "price": 4.25}).encode()
    with running_container(podman, app_image, migrated_database) as container:
        threads = [
            threading.Thread(
                target=create_until_stopped, args=(container.base_url, n, stop, acknowledged)
            )
            for n in range(4)
        ]
        for thread in threads:
            thread.start()
        slow: dict[str, Any] = {}

        def post_slowly() -> None:
            try:
                slow["answer"] = _post_slowly(container.port, slow_body, sigterm_sent)
            except Exception as exc:  # reported by the assertion below
                slow["answer"] = (None, repr(exc))

        slow_thread = threading.Thread(target=post_slowly)
        slow_thread.start()
        time.sleep(1.5)  # the stream is going, and the slow request is in a worker's hands
        stopping = subprocess.Popen(
            ["podman", "stop", "--time", "30", container.name],
            env=dict(podman.env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        container.wait_for_log("Shutting down granian", timeout=15)
        sigterm_sent.set()
        stop_output, _ = stopping.communicate(timeout=60)
        stop.set()
        for thread in [*threads, slow_thread]:
            thread.join(timeout=30)
        exit_code = container.state("ExitCode")
        logs = container.logs()

    assert stopping.returncode == 0, stop_output
    # 0: the server's own clean exit, not podman's SIGKILL (137) after the 30 s.
    assert exit_code == "0", logs[-4000:]
    status, product = slow["answer"]
    assert status == 201, (product, logs[-4000:])
    assert len(acknowledged) > 10, "the stream never got going"
    answered = [*acknowledged, product]
    stored = dict(
        query(
            migrated_database,
            "SELECT id, name FROM products WHERE id = ANY(:ids)",
            ids=[p["id"] for p in answered],
        )
    )
    missing = [p["id"] for p in answered if stored.get(p["id"]) != p["name"]]
    assert not missing, f"{len(missing)} of {len(answered)} products answered 201 are missing"
