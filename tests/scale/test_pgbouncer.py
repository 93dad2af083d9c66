"""The service through PgBouncer in transaction pooling mode (deploy/pgbouncer.ini), unchanged.

A private PostgreSQL cluster whose `catalog` database defaults to another time zone than UTC,
PgBouncer in front of it, migrations and one service instance through PgBouncer. Nothing of
the service may rely on a session: each transaction may run on another server connection,
which other clients use between two of its transactions.
"""

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg2
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from config import PROJECT_DIR, Settings
from database.engine import build_engine
from database.timeouts import waiting_with_deadlines
from tests.postgres_cluster import PrivateCluster, private_cluster
from tests.scale.proxies import PgBouncer, pgbouncer
from tests.server import all_at_once, service_process

ZONE = "America/New_York"  # the database's default: a session that kept it would show it
USER, PASSWORD = "catalog", "secret-for-pgbouncer"


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    with private_cluster() as cluster:
        admin = create_engine(cluster.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'"))
            connection.execute(text(f"CREATE DATABASE catalog OWNER {USER}"))
            connection.execute(text(f"ALTER DATABASE catalog SET timezone = '{ZONE}'"))
        admin.dispose()
        yield cluster


@pytest.fixture(scope="module")
def direct_url(cluster: PrivateCluster) -> str:
    """The `catalog` database without PgBouncer, as its superuser: for looking at the rows."""
    return make_url(cluster.url).set(database="catalog").render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def bouncer(cluster: PrivateCluster) -> Iterator[PgBouncer]:
    with pgbouncer(server_port=cluster.port, database="catalog", users={USER: PASSWORD}) as pool:
        yield pool


@pytest.fixture(scope="module")
def bouncer_url(bouncer: PgBouncer) -> str:
    """DATABASE_URL through PgBouncer, migrated as an operator would: `alembic upgrade head`."""
    url = bouncer.url("catalog", USER, PASSWORD)
    migration = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=PROJECT_DIR,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migration.returncode == 0, migration.stderr + bouncer.log()
    return url


@pytest.fixture(scope="module")
def service(bouncer_url: str) -> Iterator[str]:
    with service_process(bouncer_url, db_lock_timeout_ms="300") as running:
        yield running.base_url


def _request(service: str, method: str, path: str, **arguments: Any) -> httpx.Response:
    """One request on its own connection, as a separate client would make it."""
    with httpx.Client(base_url=service, timeout=30) as client:
        return client.request(method, path, **arguments)


def _create(service: str, **fields: Any) -> dict[str, Any]:
    response = _request(service, "POST", "/products", json={"price": 2, **fields})
    assert response.status_code == 201, response.text
    product: dict[str, Any] = response.json()
    return product


def _engines(url: str, **settings: Any) -> tuple[Engine, Engine]:
    """The service's two engines (writes, reads), as database.engine builds them."""
    configured = Settings(database_url=url, db_pool_size=1, **settings)
    writes = build_engine(configured.database_url, configured)
    return writes, build_engine(configured.database_url, configured, autocommit=True)


def _raw_value(url: str, name: str) -> str:
    """`SHOW name` on a connection of its own: what a client that sets nothing gets."""
    connection = psycopg2.connect(url)  # a libpq URL: postgresql://user:password@host:port/db
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SHOW {name}")
            row = cursor.fetchone()
        assert row is not None
        return str(row[0])
    finally:
        connection.close()


def test_this_pgbouncer_refuses_the_options_startup_parameter(bouncer: PgBouncer) -> None:
    """The strict PgBouncer of Debian: a service that set its time zone in `options` (as this
    one once did) could not connect through it at all."""
    with pytest.raises(psycopg2.OperationalError, match="unsupported startup parameter: options"):
        psycopg2.connect(
            host="127.0.0.1",
            port=bouncer.port,
            dbname="catalog",
            user=USER,
            password=PASSWORD,
            options="-c timezone=UTC",
        )


def test_migrations_through_pgbouncer_leave_the_service_ready(service: str) -> None:
    response = _request(service, "GET", "/health/ready")

    assert response.status_code == 200, response.text


def test_timestamps_are_utc_in_answers_and_in_the_database_session(
    service: str, bouncer_url: str, direct_url: str
) -> None:
    created = _create(service, name=f"Zoned {uuid.uuid4().hex[:8]}")
    patched = _request(service, "PATCH", f"/products/{created['id']}", json={"quantity": 3}).json()
    listed = _request(service, "GET", "/products", params={"q": created["name"]}).json()
    stored = _stored_timestamps(direct_url, created["id"])

    for answer in (created, patched, *listed):
        assert answer["created_at"].endswith("Z"), answer
        assert answer["updated_at"].endswith("Z"), answer
    # The same instants as the database holds, whatever zone each side writes them in.
    assert _instant(patched["created_at"]) == stored[0]
    assert _instant(patched["updated_at"]) == stored[1]
    # Nothing stayed behind on PgBouncer's server connections: another client that sets
    # nothing still gets the database's own defaults.
    assert _raw_value(bouncer_url, "TimeZone") == ZONE
    assert _raw_value(bouncer_url, "statement_timeout") == "0"


def _instant(rfc3339: str) -> datetime:
    return datetime.fromisoformat(rfc3339).astimezone(UTC)


def _stored_timestamps(direct_url: str, product_id: int) -> tuple[datetime, datetime]:
    engine = create_engine(direct_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT created_at, updated_at FROM products WHERE id = :id"),
                {"id": product_id},
            ).one()
    finally:
        engine.dispose()
    return row.created_at.astimezone(UTC), row.updated_at.astimezone(UTC)


def test_if_match_races_have_exactly_one_winner(service: str) -> None:
    product = _create(service, name="Raced", quantity=10)

    answers = all_at_once(
        10,
        lambda i: _request(
            service,
            "PATCH",
            f"/products/{product['id']}",
            json={"quantity": i},
            headers={"If-Match": '"1"'},
        ),
    )

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [412] * 9, statuses
    (winner,) = (answer for answer in answers if answer.status_code == 200)
    final = _request(service, "GET", f"/products/{product['id']}").json()
    assert final == winner.json()
    assert final["version"] == 2


def test_keyed_post_races_write_once(service: str, direct_url: str) -> None:
    name = f"Keyed {uuid.uuid4().hex[:8]}"
    key = f"bounced-{uuid.uuid4()}"

    answers = all_at_once(
        10,
        lambda _: _request(
            service,
            "POST",
            "/products",
            json={"name": name, "price": 4},
            headers={"Idempotency-Key": key},
        ),
    )

    statuses = [answer.status_code for answer in answers]
    assert set(statuses) <= {201, 409}, statuses
    created = [answer for answer in answers if answer.status_code == 201]
    assert created, statuses
    assert len({answer.content for answer in created}) == 1
    engine = create_engine(direct_url)
    try:
        with engine.connect() as connection:
            ids = connection.execute(
                text("SELECT id FROM products WHERE name = :name"), {"name": name}
            ).scalars()
            assert list(ids) == [created[0].json()["id"]]
    finally:
        engine.dispose()


def test_a_lock_wait_ends_in_503_not_a_hang(service: str, direct_url: str) -> None:
    product = _create(service, name="Locked")
    holder = create_engine(direct_url)
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        with holder.connect() as connection:
            connection.execute(
                text("SELECT 1 FROM products WHERE id = :id FOR UPDATE"), {"id": product["id"]}
            )
            locked.set()
            release.wait(30)
            connection.rollback()

    thread = threading.Thread(target=hold_the_row)
    thread.start()
    try:
        assert locked.wait(10)
        with httpx.Client(base_url=service, timeout=10) as client:
            answer = client.patch(f"/products/{product['id']}", json={"quantity": 1})
    finally:
        release.set()
        thread.join(30)
        holder.dispose()

    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert int(answer.headers["retry-after"]) >= 1
    after = _request(service, "GET", f"/products/{product['id']}").json()
    assert after["version"] == 1


def test_the_statement_timeout_holds_through_pgbouncer(bouncer_url: str) -> None:
    """A write's statement is cancelled by the server (its SET LOCAL came through); a read,
    autocommit, is given up by the service's own clock (database/timeouts.py)."""
    writes, reads = _engines(bouncer_url, db_statement_timeout_ms=200)
    settings = Settings(database_url=bouncer_url, db_statement_timeout_ms=200)
    try:
        with writes.connect() as connection, pytest.raises(OperationalError) as cancelled:
            connection.execute(text("SELECT pg_sleep(5)"))
        with (
            waiting_with_deadlines(settings),
            reads.connect() as connection,
            pytest.raises(OperationalError) as given_up,
        ):
            connection.execute(text("SELECT pg_sleep(5)"))
    finally:
        reads.dispose()
        writes.dispose()

    assert cancelled.value.orig.pgcode == "57014"  # type: ignore[union-attr]
    assert "timeout expired" in str(given_up.value.orig)
