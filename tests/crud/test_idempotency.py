"""Claims of an `Idempotency-Key` racing on PostgreSQL, each request in a transaction of its own
on an engine built as the service builds its own."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

import crud.idempotency as crud
from config import Settings
from crud.errors import IdempotencyKeyInUse
from database.engine import build_engine
from tests.databases import fresh_postgres_database, upgrade

pytestmark = pytest.mark.postgres_only

TTL = timedelta(hours=1)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with fresh_postgres_database("catalog_claims") as url:
        settings = Settings(database_url=url, db_lock_timeout_ms=2000)
        engine = build_engine(settings.database_url, settings)
        with engine.begin() as connection:
            upgrade(connection)
        yield engine
        engine.dispose()


def test_a_retry_meeting_an_expired_key_being_claimed_anew_is_a_409_at_once(
    engine: Engine,
) -> None:
    request = crud.KeyedRequest("anyone", "expired-then-raced", "fingerprint")
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(crud.KEYS).values(
                caller=request.caller,
                key=request.key,
                fingerprint=request.fingerprint,
                created_at=now - 2 * TTL,
                expires_at=now - TTL,
            )
        )

    with Session(engine) as first, Session(engine) as retry:
        # The first request makes way for itself and claims the key: still in flight.
        assert crud.claim_or_kept(first, request, now=now, ttl=TTL) is None
        # Not a wait for the first request's row lock until DB_LOCK_TIMEOUT_MS (a 503).
        with pytest.raises(IdempotencyKeyInUse):
            crud.claim_or_kept(retry, request, now=now, ttl=TTL)
        retry.rollback()
        first.rollback()
