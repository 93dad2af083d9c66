"""A write the synchronous standby never confirmed is not answered 2xx.

A private primary with a synchronous standby, the service on the primary with
DB_STATEMENT_TIMEOUT_MS=1000. With the standby down, a POST's COMMIT waits for it (the
statement timeout does not bound that wait); the test then cancels the wait, as
`pg_cancel_backend` or a pooler's query timeout would. PostgreSQL keeps that commit on the
primary alone and reports success with a warning: the POST must answer 503 with Retry-After,
and its retry with the same Idempotency-Key, once the standby is back, replays the kept 201.
"""

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.scale.replication import Node, Replication, replication
from tests.server import migrate, service_process

STATEMENT_TIMEOUT_MS = 1000
_WAIT_S = 30  # for a commit to be seen waiting: seconds, at most


@pytest.fixture
def cluster() -> Iterator[tuple[Replication, Node]]:
    with replication() as nodes:
        migrate(nodes.primary.url)
        yield nodes, nodes.replica("standby", synchronous=True)


def _commit_waiting_for_the_standby(primary: Node) -> int:
    """The backend whose COMMIT waits for the synchronous standby, once it does."""
    waiting = (
        "SELECT pid FROM pg_stat_activity"
        " WHERE application_name = 'catalog' AND wait_event = 'SyncRep'"
    )
    deadline = time.monotonic() + _WAIT_S
    while (pid := primary.query(waiting)) is None:
        assert time.monotonic() < deadline, "no commit waits for the standby"
        time.sleep(0.1)
    assert isinstance(pid, int)
    return pid


def test_a_write_the_standby_did_not_confirm_is_answered_503(
    cluster: tuple[Replication, Node],
) -> None:
    nodes, standby = cluster
    primary = nodes.primary
    keyed = {"Idempotency-Key": "unconfirmed-1"}
    with (
        service_process(primary.url, db_statement_timeout_ms=str(STATEMENT_TIMEOUT_MS)) as service,
        httpx.Client(base_url=service.base_url, timeout=60) as client,
        ThreadPoolExecutor(max_workers=1) as background,
    ):
        assert client.post("/products", json={"name": "Before", "price": 1}).status_code == 201

        standby.stop("fast")
        pending = background.submit(
            client.post, "/products", json={"name": "Unconfirmed", "price": 1}, headers=keyed
        )
        backend = _commit_waiting_for_the_standby(primary)
        time.sleep(2 * STATEMENT_TIMEOUT_MS / 1000)
        still_waiting = not pending.done()  # the statement timeout did not end the wait
        primary.query(f"SELECT pg_cancel_backend({backend})")
        unconfirmed = pending.result(timeout=_WAIT_S)
        on_the_primary = primary.query("SELECT count(*) FROM products WHERE name = 'Unconfirmed'")

        standby.start()
        nodes.wait_for("standby", "sync")
        retried = client.post("/products", json={"name": "Unconfirmed", "price": 1}, headers=keyed)
        after = client.post("/products", json={"name": "After", "price": 1})

    assert still_waiting
    assert unconfirmed.status_code == 503, unconfirmed.text
    assert int(unconfirmed.headers["retry-after"]) > 0
    # Committed on the primary alone: the client cannot know, so it retries, and the retry
    # replays the answer kept with the write instead of writing again.
    assert on_the_primary == 1
    assert retried.status_code == 201
    assert retried.headers.get("idempotent-replayed") == "true"
    assert after.status_code == 201
