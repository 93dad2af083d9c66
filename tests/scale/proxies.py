"""PgBouncer, HAProxy and restartable service instances as processes, for tests/scale.

PgBouncer and HAProxy run from the project's own configurations (`deploy/pgbouncer.ini`,
`deploy/haproxy.cfg`): a copy of each with this test's ports and paths put in, nothing else
changed, so the tests exercise what an operator deploys. Everything listens on free ports of
127.0.0.1 and is stopped by its context manager.
"""

import contextlib
import csv
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from config import PROJECT_DIR
from tests.databases import IN_CI
from tests.server import PRODUCTION_COMMAND, free_port

DEPLOY = PROJECT_DIR / "deploy"
PGBOUNCER = Path("/usr/sbin/pgbouncer")
HAPROXY = Path("/usr/sbin/haproxy")


def require(binary: Path) -> None:
    """Skip without `binary` (`bash .ci/install-scale-tools` installs it); under CI, fail."""
    if not os.access(binary, os.X_OK):
        message = f"{binary} is missing (bash .ci/install-scale-tools installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def _wait_for_port(name: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start:\n{log.read_text()}")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes], signal_number: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(signal_number)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# PgBouncer refuses to run as root; Debian runs it as `postgres`. The process itself changes
# user (no `runuser` in between, which would not pass the stopping signal on).
_UNPRIVILEGED: dict[str, Any] = (
    {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}
)


def _private_directory(prefix: str) -> Path:
    """A temporary directory; owned by `postgres` when run as root (`_UNPRIVILEGED`)."""
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    return directory


# --- PgBouncer -------------------------------------------------------------------------------


def render_pgbouncer_ini(settings: Mapping[str, str], databases: Mapping[str, str]) -> str:
    """deploy/pgbouncer.ini with `settings` (key: value) replaced in [pgbouncer] and the
    [databases] entries replaced by `databases` (name: connection string)."""
    lines, section, missing = [], "", dict(settings)
    for line in (DEPLOY / "pgbouncer.ini").read_text().splitlines():
        if header := re.fullmatch(r"\[(\w+)\]\s*", line):
            section = header.group(1)
            lines.append(line)
            if section == "databases":
                lines += [f"{name} = {target}" for name, target in databases.items()]
            continue
        key = re.match(r"\s*([\w*]+)\s*=", line)
        if key and section == "databases":
            continue  # the deployment's targets, replaced by this test's
        if key and section == "pgbouncer" and key.group(1) in settings:
            line = f"{key.group(1)} = {missing.pop(key.group(1))}"
        lines.append(line)
    assert not missing, f"deploy/pgbouncer.ini has no {sorted(missing)} to replace"
    return "\n".join(lines) + "\n"


class PgBouncer:
    def __init__(self, port: int, directory: Path) -> None:
        self.port, self.directory = port, directory

    def url(self, database: str, user: str, password: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        return (self.directory / "pgbouncer.log").read_text()


@contextmanager
def pgbouncer(*, server_port: int, database: str, users: Mapping[str, str]) -> Iterator[PgBouncer]:
    """PgBouncer from deploy/pgbouncer.ini in front of `database` at 127.0.0.1:`server_port`,
    letting in `users` (name: password) as its auth_file would."""
    require(PGBOUNCER)
    directory = _private_directory("catalog-pgbouncer-")
    port = free_port()
    auth_file = directory / "userlist.txt"
    auth_file.write_text("".join(f'"{name}" "{secret}"\n' for name, secret in users.items()))
    config = directory / "pgbouncer.ini"
    config.write_text(
        render_pgbouncer_ini(
            {
                "listen_addr": "127.0.0.1",
                "listen_port": str(port),
                "unix_socket_dir": str(directory),
                "auth_file": str(auth_file),
                "logfile": str(directory / "pgbouncer.log"),
                "pidfile": str(directory / "pgbouncer.pid"),
            },
            {database: f"host=127.0.0.1 port={server_port} dbname={database}"},
        )
    )
    if os.geteuid() == 0:
        for path in (auth_file, config):
            shutil.chown(path, "postgres", "postgres")
    log = directory / "pgbouncer.log"
    process = subprocess.Popen(
        [str(PGBOUNCER), "-q", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **_UNPRIVILEGED,
    )
    try:
        _wait_for_port("PgBouncer", port, process, log)
        yield PgBouncer(port, directory)
    finally:
        _stop(process, signal.SIGINT)  # PgBouncer's "safe shutdown": after running queries
        shutil.rmtree(directory, ignore_errors=True)


# --- HAProxy ---------------------------------------------------------------------------------


def render_haproxy_cfg(*, port: int, servers: Mapping[str, int], stats_socket: Path) -> str:
    """deploy/haproxy.cfg listening on `port`, balancing `servers` (name: port on 127.0.0.1),
    its runtime API on `stats_socket`; run in the foreground as the user running the tests."""
    lines: list[str] = []
    for line in (DEPLOY / "haproxy.cfg").read_text().splitlines():
        words = line.split()
        keyword = words[0] if words else ""
        if keyword in {"user", "group", "chroot", "daemon"}:
            continue
        indent = line[: len(line) - len(line.lstrip())]
        if keyword == "bind":
            line = f"{indent}bind 127.0.0.1:{port}"
        elif keyword == "stats" and words[1] == "socket":
            line = f"{indent}stats socket {stats_socket} mode 600 level admin"
        elif keyword == "server":
            if lines[-1].split()[:1] == ["server"]:
                continue  # the deployment's servers, replaced by this test's below
            line = "\n".join(
                f"{indent}server {name} 127.0.0.1:{server_port}"
                for name, server_port in servers.items()
            )
        lines.append(line)
    return "\n".join(lines) + "\n"


class HAProxy:
    def __init__(self, base_url: str, stats_socket: Path, log: Path) -> None:
        self.base_url, self.stats_socket, self.log = base_url, stats_socket, log

    def command(self, line: str) -> str:
        """One command on the runtime API (the stats socket), its answer."""
        with socket.socket(socket.AF_UNIX) as connection:
            connection.settimeout(5)
            connection.connect(str(self.stats_socket))
            connection.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_status(self) -> dict[str, str]:
        """Each server of the `catalog` backend: UP, DOWN, or a transition ("DOWN 1/2")."""
        table = csv.DictReader(io.StringIO(self.command("show stat").removeprefix("# ")))
        return {
            row["svname"]: row["status"]
            for row in table
            if row["pxname"] == "catalog" and row["svname"] not in {"FRONTEND", "BACKEND"}
        }

    def wait_until(self, server: str, status: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while (current := self.server_status()[server]) != status:
            assert time.monotonic() < deadline, f"{server} is {current}, not {status}"
            time.sleep(0.05)

    def output(self) -> str:
        """What HAProxy logged (`log stdout`): a line per request, and every server's state."""
        return self.log.read_text()


@contextmanager
def haproxy(servers: Mapping[str, int]) -> Iterator[HAProxy]:
    """HAProxy from deploy/haproxy.cfg in front of `servers` (name: port on 127.0.0.1)."""
    require(HAPROXY)
    directory = Path(tempfile.mkdtemp(prefix="catalog-haproxy-", dir="/tmp"))
    stats_socket = directory / "admin.sock"
    config = directory / "haproxy.cfg"
    log = directory / "haproxy.log"
    try:
        # A free port can be taken by another process before HAProxy binds it: HAProxy then
        # exits, and starts again on another port.
        for attempt in range(3):
            port = free_port()
            config.write_text(
                render_haproxy_cfg(port=port, servers=servers, stats_socket=stats_socket)
            )
            with log.open("wb") as output:
                # -db: in the foreground, not as a daemon; its log lines (`log stdout`) go to `log`.
                process = subprocess.Popen(
                    [str(HAPROXY), "-db", "-f", str(config)],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            proxy = HAProxy(f"http://127.0.0.1:{port}", stats_socket, log)
            if _haproxy_started(proxy, process) or attempt == 2:
                break
        _wait_for_port("HAProxy", port, process, log)
        yield proxy
    finally:
        _stop(process, signal.SIGUSR1)  # soft stop: finish the requests under way
        shutil.rmtree(directory, ignore_errors=True)


def _haproxy_started(proxy: HAProxy, process: subprocess.Popen[bytes]) -> bool:
    """Whether HAProxy answers on its runtime API (False: it exited, e.g. its port was taken)."""
    deadline = time.monotonic() + 20
    while process.poll() is None:
        with contextlib.suppress(OSError):
            if "Pid:" in proxy.command("show info"):
                return True
        if time.monotonic() > deadline:
            raise RuntimeError(f"HAProxy did not start:\n{proxy.output()}")
        time.sleep(0.05)
    return False


class Instance:
    """`python main.py`, the production entry point, on a port of its own that survives a
    restart (as an instance behind a load balancer keeps its address)."""

    def __init__(self, database_url: str, log_directory: Path, **settings: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.environment = {
            **os.environ,
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "warning",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            **{name.upper(): value for name, value in settings.items()},
        }
        self.log_path = log_directory / f"instance-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, *PRODUCTION_COMMAND],
                cwd=PROJECT_DIR,
                env=self.environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60  # a busy 2-core machine takes its time
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the instance did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)

    def terminate(self) -> None:
        """SIGTERM, as a process manager stops it; then wait until it has exited."""
        assert self.process is not None
        _stop(self.process)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.terminate()
