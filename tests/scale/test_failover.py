"""Failover without loss, for real: a private primary with a synchronous standby, two service
instances (uvicorn processes) on a multi-host `DATABASE_URL` with
`target_session_attrs=read-write`, and writers on both while the primary crashes
(`pg_ctl stop -m immediate`) and the standby is promoted.

The contract's words: no write answered 2xx is lost; in between, only 503 with `Retry-After`;
writes come back within DB_CONNECT_TIMEOUT plus a few seconds of the promotion.
"""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.scale.replication import Node, replication
from tests.server import migrate, service_process

CONNECT_TIMEOUT_S = 2
# The bound on writing again after the promotion: DB_CONNECT_TIMEOUT plus a few seconds.
BACK_WITHIN_S = CONNECT_TIMEOUT_S + 5
WRITERS_PER_INSTANCE = 2
WRITING_BEFORE_S = 1.5  # writes answered by the first primary before it crashes
DOWN_FOR_S = 1.0  # from the crash to the promotion: no primary at all


@dataclass
class Answer:
    instance: int
    at: float
    status: int
    retry_after: str | None
    name: str
    product_id: int | None


@dataclass
class Log:
    answers: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)


def _multi_host_url(*nodes: Node) -> str:
    """libpq's multi-host form, as docs/scaling.md tells operators to write it."""
    hosts = ",".join(f"127.0.0.1:{node.port}" for node in nodes)
    return f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"


def _write_until(
    client: httpx.Client, instance: int, writer: int, stop: threading.Event, log: Log
) -> None:
    for number in range(1_000_000):
        if stop.is_set():
            return
        name = f"Failover {instance}-{writer}-{number}"
        response = client.post("/products", json={"name": name, "price": 1.25})
        product_id = response.json()["id"] if response.status_code == 201 else None
        log.add(
            Answer(
                instance,
                time.monotonic(),
                response.status_code,
                response.headers.get("retry-after"),
                name,
                product_id,
            )
        )
        if response.status_code == 503:
            time.sleep(0.05)  # a client honouring Retry-After would wait longer


@pytest.fixture
def cluster() -> Iterator[tuple[Node, Node]]:
    with replication() as nodes:
        migrate(nodes.primary.url)
        standby = nodes.replica("standby", synchronous=True)
        yield nodes.primary, standby


def test_a_failover_to_the_synchronous_standby_loses_no_acknowledged_write(
    cluster: tuple[Node, Node],
) -> None:
    primary, standby = cluster
    url = _multi_host_url(primary, standby)
    log, stop = Log(), threading.Event()
    with ExitStack() as stack:
        clients = [
            stack.enter_context(
                httpx.Client(
                    base_url=stack.enter_context(
                        service_process(
                            url,
                            db_connect_timeout=str(CONNECT_TIMEOUT_S),
                            db_pool_timeout="2",
                        )
                    ).base_url,
                    timeout=30,
                )
            )
            for _ in range(2)
        ]
        writers = ThreadPoolExecutor(max_workers=len(clients) * WRITERS_PER_INSTANCE)
        futures = [
            writers.submit(_write_until, client, instance, writer, stop, log)
            for instance, client in enumerate(clients)
            for writer in range(WRITERS_PER_INSTANCE)
        ]
        try:
            time.sleep(WRITING_BEFORE_S)
            primary.stop("immediate")
            crashed_at = time.monotonic()
            time.sleep(DOWN_FOR_S)
            standby.promote()
            promoted_at = time.monotonic()
            # Until every instance has written again (or the bound has long passed).
            deadline = promoted_at + BACK_WITHIN_S + 10
            while time.monotonic() < deadline:
                with log.lock:
                    back = {
                        a.instance for a in log.answers if a.at > promoted_at and a.status == 201
                    }
                if back == set(range(len(clients))):
                    break
                time.sleep(0.1)
            time.sleep(0.5)  # a few writes on the new primary
        finally:
            stop.set()
            for future in futures:
                future.result(timeout=60)  # a connection error to an instance fails here
            writers.shutdown()

    answers = log.answers
    acknowledged = {a.name: a.product_id for a in answers if a.status == 201}
    before = [a for a in answers if a.at < crashed_at and a.status == 201]
    refused = [a for a in answers if a.status != 201]
    assert before, "nothing was written before the crash"
    # Only 503, each with a Retry-After, between the crash and the new primary.
    assert {a.status for a in refused} <= {503}, sorted({a.status for a in refused})
    assert all(a.retry_after and int(a.retry_after) > 0 for a in refused)
    for instance in range(len(clients)):
        first_back = min(
            (
                a.at
                for a in answers
                if a.instance == instance and a.at > promoted_at and a.status == 201
            ),
            default=None,
        )
        assert first_back is not None, f"instance {instance} never wrote again"
        assert first_back - promoted_at <= BACK_WITHIN_S, (
            f"instance {instance} wrote again {first_back - promoted_at:.1f} s after the promotion"
        )
    # Every write answered 201, by the old primary or the new, is on the new primary.
    engine = create_engine(standby.url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT name, id FROM products WHERE name LIKE 'Failover %'")
            )
            stored: dict[str, int] = {row.name: row.id for row in rows}
    finally:
        engine.dispose()
    lost = {name for name in acknowledged if name not in stored}
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged writes lost"
    assert all(stored[name] == product_id for name, product_id in acknowledged.items())
