"""PostgreSQL streaming replication for the scale tests, on private clusters (PrivateCluster).

A primary set up for replication, and replicas made from it with `pg_basebackup -R` (which
writes `standby.signal` and `primary_conninfo`), each on a free port of 127.0.0.1: a
synchronous standby (the primary waits for it to have flushed every commit before answering
it) and a replica that applies commits `apply_delay` late (`recovery_min_apply_delay`), so lag
is there to see. Nodes can be stopped the way a crash stops them (`-m immediate`) and
promoted. Every node is stopped and every data directory removed at the end.
"""

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Literal

import pytest
from sqlalchemy import create_engine, text

from tests.databases import IN_CI
from tests.postgres_cluster import PrivateCluster, _bindir
from tests.server import free_port

StopMode = Literal["smart", "fast", "immediate"]
_WAIT_S = 30  # for replication to start or catch up: seconds, at most

# What a primary needs for streaming replicas (most are PostgreSQL 15's defaults already,
# named so that the set-up does not depend on them); `wal_sender_timeout` notices a
# standby that vanished within a few seconds.
PRIMARY_SETTINGS = {
    "wal_level": "replica",
    "max_wal_senders": "10",
    "wal_sender_timeout": "5s",
}


class Node(PrivateCluster):
    """A private cluster started with `settings` as `-c` options, stoppable in any mode."""

    def __init__(
        self, bindir: Path, directory: Path, port: int, settings: Mapping[str, str]
    ) -> None:
        super().__init__(bindir, directory, port)
        self.settings = dict(settings)

    def init(self) -> None:
        # --no-sync: a throw-away cluster need not wait for initdb's files to reach the disk.
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-k {self.directory}",
            *(f"-c {name}={shlex.quote(value)}" for name, value in self.settings.items()),
        ]
        # pg_ctl hands `-o` to a shell: the quoting above is for it.
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            " ".join(options),
            "-l",
            str(self.directory / "log"),
            "-w",
            "start",
        )

    def stop(self, mode: StopMode = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def promote(self) -> None:
        """Make this standby a primary: it stops replaying and accepts writes."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "promote")

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def query(self, sql: str) -> object:
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                result = connection.execute(text(sql))
                return result.scalar() if result.returns_rows else None
        finally:
            engine.dispose()

    def log(self) -> str:
        path = self.directory / "log"
        return path.read_text(errors="replace") if path.exists() else ""


class Replication:
    """A primary and the replicas made from it; `replica()` adds one."""

    def __init__(self, bindir: Path, stack: ExitStack) -> None:
        self.bindir, self._stack = bindir, stack
        self.primary = self._node(PRIMARY_SETTINGS)
        self.primary.init()
        self.primary.start()

    def _node(self, settings: Mapping[str, str]) -> Node:
        directory = Path(tempfile.mkdtemp(prefix="catalog-pg-", dir="/tmp"))
        self._stack.callback(shutil.rmtree, directory, ignore_errors=True)
        if os.geteuid() == 0:  # the cluster's files belong to the user that runs it
            shutil.chown(directory, "postgres", "postgres")
        node = Node(self.bindir, directory, free_port(), settings)

        def stop() -> None:
            if node.is_running():
                with contextlib.suppress(subprocess.CalledProcessError):
                    node.stop("immediate")

        self._stack.callback(stop)  # runs before the directory's removal (last in, first out)
        return node

    def replica(
        self, name: str, *, synchronous: bool = False, apply_delay: str | None = None
    ) -> Node:
        """A streaming replica of the primary as it is now, started and streaming.

        `synchronous`: the primary's one synchronous standby, from now on (its commits wait
        for this replica to have flushed them). `apply_delay`: commits become visible on the
        replica this late (`recovery_min_apply_delay`, e.g. "2s").
        """
        conninfo = f"host=127.0.0.1 port={self.primary.port} user=postgres application_name={name}"
        settings = {"primary_conninfo": conninfo, "hot_standby": "on"}
        if apply_delay is not None:
            settings["recovery_min_apply_delay"] = apply_delay
        node = self._node(settings)
        node._run(
            "pg_basebackup",
            "-D",
            str(node.data),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary.port),
            "-U",
            "postgres",
            "-X",
            "stream",
            "-R",
            "--checkpoint=fast",  # not the spread checkpoint that would take seconds
            "--no-sync",
        )
        node.start()
        self.wait_for(name, "streaming")
        if synchronous:
            self.primary.query(f"ALTER SYSTEM SET synchronous_standby_names = '{name}'")
            self.primary.query("SELECT pg_reload_conf()")
            self.wait_for(name, "sync")
        return node

    def wait_for(self, name: str, what: Literal["streaming", "sync"]) -> None:
        """Until replica `name` streams (or is the synchronous standby) again, or fail."""
        column = "state" if what == "streaming" else "sync_state"
        deadline = time.monotonic() + _WAIT_S
        while True:
            found = self.primary.query(
                f"SELECT {column} FROM pg_stat_replication WHERE application_name = '{name}'"
            )
            if found == what:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"replica {name} is not {what} ({found}):\n{self.primary.log()}")
            time.sleep(0.1)


@contextmanager
def replication() -> Iterator[Replication]:
    """A primary ready for replicas; everything it and its replicas leave is removed after."""
    bindir = _bindir()
    if bindir is None or not (bindir / "pg_basebackup").exists():
        message = "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) not found"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with ExitStack() as stack:
        yield Replication(bindir, stack)
