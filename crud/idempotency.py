"""Every query on `idempotency_keys`: a POST's answer, kept with its write, for its retries.

A keyed request *claims* its key: a plain `INSERT` into the primary key (caller, key), in the
write's own transaction and before the write. The write follows, then the answer is stored in
the claimed row and all of it commits at once (`keep`). So the unique key decides, not a
check-then-insert: however many retries race, one claims and the others find its answer, and a
crash leaves neither the write nor the key. A key that is taken refuses the claim:
- committed (answered, or expired and not purged yet): a unique violation, `KeyTaken`;
- claimed by a transaction still in flight: the claim must not wait for it (docs/api.md: 409
  at once). On PostgreSQL the claimer holds the key's advisory lock until its transaction
  ends, and a claim first takes that lock without waiting (`lock_not_available` if held);
  SQLite has one writer at a time, so there a claim never meets a transaction in flight.
On PostgreSQL the claim costs no round trip: it travels with the write's first statement
(`database.engine.sent_with_next_statement`), and a refused claim stops that statement.
docs/design.md, "Idempotent retries", says why and what it costs.
"""

import functools
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    ClauseElement,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from config import get_settings
from crud import shared
from crud.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from database.engine import sent_with_next_statement
from models import IdempotencyKey

KEYS = IdempotencyKey.metadata.tables[IdempotencyKey.__tablename__]
_PRIMARY_KEY = KEYS.primary_key.name
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock wait it gave up
_NO_WAIT_MS = 1  # PostgreSQL's shortest lock timeout: 0 would mean no limit at all


@dataclass(frozen=True)
class KeyedRequest:
    """What identifies a keyed request: whose key space, which key, and what was asked."""

    caller: str
    key: str
    fingerprint: str

    @property
    def lock_id(self) -> int:
        """A 64-bit number for this (caller, key): PostgreSQL's advisory locks take one."""
        digest = hashlib.sha256(f"{self.caller}\n{self.key}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


class KeptAnswer(NamedTuple):
    """An answer as it is kept and replayed: the status, the headers that matter, the body."""

    status: int
    location: str | None
    etag: str | None
    body: bytes


class KeyTaken(Exception):
    """The key is committed already: its answer (`kept_answer`) is the one to give."""


# Parameters are named `idempotency_<column>` and `new_<column>`: SQLAlchemy reserves the
# column names, and the claim's must not meet those of the write it travels with.
_THIS_KEY = (KEYS.c.caller == bindparam("idempotency_caller")) & (
    KEYS.c.key == bindparam("idempotency_key")
)
_CLAIM = insert(KEYS).values(
    caller=bindparam("idempotency_caller"),
    key=bindparam("idempotency_key"),
    fingerprint=bindparam("idempotency_fingerprint"),
    created_at=bindparam("idempotency_created_at"),
    expires_at=bindparam("idempotency_expires_at"),
)
_LOCK_ID = bindparam("idempotency_lock", type_=BigInteger)
# Held until the transaction ends: "a request is carrying this key out".
_TAKE_LOCK = select(func.pg_advisory_xact_lock(_LOCK_ID))
# After a lock timeout: is the key held by a request in flight, committed, or free?
_WHO_HAS_IT = select(
    func.pg_try_advisory_xact_lock(_LOCK_ID).label("free"),
    exists().where(_THIS_KEY).label("committed"),
)
_KEPT = select(
    KEYS.c.fingerprint,
    KEYS.c.status,
    KEYS.c.location,
    KEYS.c.etag,
    KEYS.c.body,
    KEYS.c.expires_at,
).where(_THIS_KEY)
_KEEP = (
    update(KEYS)
    .where(_THIS_KEY)
    .values(
        status=bindparam("new_status"),
        location=bindparam("new_location"),
        etag=bindparam("new_etag"),
        body=bindparam("new_body"),
    )
)
_EXPIRED = delete(KEYS).where(
    _THIS_KEY, KEYS.c.expires_at <= bindparam("idempotency_now", type_=KEYS.c.expires_at.type)
)


def _of(request: KeyedRequest) -> dict[str, str]:
    return {"idempotency_caller": request.caller, "idempotency_key": request.key}


def _claim_parameters(request: KeyedRequest, *, now: datetime, ttl: timedelta) -> dict[str, Any]:
    return {
        **_of(request),
        "idempotency_fingerprint": request.fingerprint,
        "idempotency_created_at": now,
        "idempotency_expires_at": now + ttl,
        "idempotency_lock": request.lock_id,
    }


@functools.lru_cache(maxsize=4)
def _claim_on_postgresql(lock_timeout_ms: int) -> tuple[ClauseElement, ...]:
    """The key's lock, taken without waiting; then the claim, under the usual lock timeout."""
    return (
        text(f"SET LOCAL lock_timeout = {_NO_WAIT_MS}"),
        _TAKE_LOCK,
        text(f"SET LOCAL lock_timeout = {lock_timeout_ms}"),
        _CLAIM,
    )


@contextmanager
def claimed(
    session: Session, request: KeyedRequest, *, now: datetime, ttl: timedelta
) -> Iterator[None]:
    """Claim `request`'s key for the write the block makes, in that write's transaction.

    The block's first statement carries the claim (PostgreSQL) or follows it (SQLite). A key
    that is taken stops the block: `KeyTaken` when it is committed (the session rolled back),
    `IdempotencyKeyInUse` while another transaction has claimed it and not ended. The block's
    own errors pass through as they are.
    """
    parameters = _claim_parameters(request, now=now, ttl=ttl)
    try:
        if session.get_bind().dialect.name == "postgresql":
            # The session's transaction begins here (a savepoint, when it joins another's), so
            # the next statement is the block's.
            claim = _claim_on_postgresql(get_settings().db_lock_timeout_ms)
            with sent_with_next_statement(session.connection(), claim, parameters):
                yield
        else:
            session.execute(_CLAIM, parameters)
            yield
    except IntegrityError as exc:
        if shared.violated_constraint(exc, KEYS) != _PRIMARY_KEY:
            raise
        session.rollback()
        raise KeyTaken() from exc
    except OperationalError as exc:
        if getattr(exc.orig, "pgcode", None) != _LOCK_NOT_AVAILABLE:
            raise
        session.rollback()
        # The key's lock was held, or the write gave up after DB_LOCK_TIMEOUT_MS on a lock of
        # its own (a 503): the key tells which.
        _raise_if_taken(session, parameters)
        raise


def _raise_if_taken(session: Session, parameters: dict[str, Any]) -> None:
    """`IdempotencyKeyInUse` while a request in flight holds the key, `KeyTaken` once one has
    committed it; returns if it is free. Takes nothing: its transaction is rolled back."""
    try:
        holder = session.execute(_WHO_HAS_IT, parameters).one()
    finally:
        session.rollback()
    if not holder.free:
        raise IdempotencyKeyInUse()
    if holder.committed:
        raise KeyTaken()


def kept_answer(session: Session, request: KeyedRequest, *, now: datetime) -> KeptAnswer | None:
    """The answer kept for `request`'s committed key, to be replayed; None once it expired (its
    row is then deleted, and the key can be claimed anew). `IdempotencyKeyReused` if it was
    kept for another request."""
    row = session.execute(_KEPT, _of(request)).one_or_none()
    if row is None or row.expires_at <= now:
        # Expired (or purged meanwhile): it makes way for the new request.
        session.execute(_EXPIRED, {**_of(request), "idempotency_now": now})
        session.commit()
        return None
    session.rollback()
    if row.fingerprint != request.fingerprint:
        raise IdempotencyKeyReused()
    return KeptAnswer(row.status, row.location, row.etag, row.body)


def keep(session: Session, request: KeyedRequest, answer: KeptAnswer) -> None:
    """Store the answer in the key claimed by this transaction, and commit it with the write."""
    new = {f"new_{field}": value for field, value in answer._asdict().items()}
    session.execute(_KEEP, {**_of(request), **new})
    session.commit()


def keep_refusal(
    session: Session, request: KeyedRequest, answer: KeptAnswer, *, now: datetime, ttl: timedelta
) -> None:
    """Keep the answer of a write that was refused (and rolled back, its claim with it), in a
    transaction of its own: claim the key again and store the answer.

    `KeyTaken` if the key is committed: another request's answer was kept meanwhile, or before
    (a write refused before its first statement never sent its claim). While another request
    in flight has claimed it, nothing is kept: that request's answer will be.
    """
    session.rollback()
    try:
        with claimed(session, request, now=now, ttl=ttl):
            keep(session, request, answer)
    except IdempotencyKeyInUse:
        pass


def purge_expired(session: Session, *, now: datetime, limit: int) -> int:
    """Delete up to `limit` expired keys, oldest first; how many were deleted.

    A range scan of the `expires_at` index, never the whole table. On PostgreSQL, rows locked by
    another purge or by a request deleting the expired key it met are skipped, not waited for.
    """
    expired = (
        select(KEYS.c.caller, KEYS.c.key)
        .where(KEYS.c.expires_at <= now)
        .order_by(KEYS.c.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = session.execute(delete(KEYS).where(tuple_(KEYS.c.caller, KEYS.c.key).in_(expired)))
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
