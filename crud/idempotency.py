"""Every query on `idempotency_keys`: a POST's answer, kept with its write, for its retries.

A keyed request *claims* its key in the write's own transaction, before the write: an
`INSERT ... ON CONFLICT DO NOTHING` into the primary key (caller, key). The write follows, then
the answer is stored in the claimed row (`keep`) and all of it commits at once. So the unique
key decides, not a check-then-insert: however many retries race, one claims and the others
find its answer, and a crash leaves neither the write nor the key.

A key claimed by a transaction still in flight must not make the next claim wait for it (the
contract: 409 at once). On PostgreSQL a claimer holds the key's advisory lock until its
transaction ends, and a claim is made only by whoever takes that lock, without waiting
(`pg_try_advisory_xact_lock`, in the claim's own statement). SQLite has one writer at a time:
there a claim never meets a transaction in flight.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import delete, func, literal, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from crud.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from models import IdempotencyKey

KEYS = IdempotencyKey.metadata.tables[IdempotencyKey.__tablename__]


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
    status: int
    location: str | None
    etag: str | None
    body: bytes


def claim(session: Session, request: KeyedRequest, *, now: datetime, ttl: timedelta) -> bool:
    """Claim `request`'s key in the session's transaction: True if it is now this request's;
    False if it is taken, committed or claimed by a transaction in flight."""
    values = {
        "caller": request.caller,
        "key": request.key,
        "fingerprint": request.fingerprint,
        "created_at": now,
        "expires_at": now + ttl,
    }
    if session.get_bind().dialect.name == "postgresql":
        row = select(*(literal(value, KEYS.c[name].type) for name, value in values.items()))
        # Held until the transaction ends: "a request is carrying this key out".
        taken_now = row.where(func.pg_try_advisory_xact_lock(request.lock_id))
        statement: Any = postgresql.insert(KEYS).from_select(list(values), taken_now)
    else:
        statement = sqlite.insert(KEYS).values(values)
    claimed = statement.on_conflict_do_nothing().returning(KEYS.c.key)
    return session.execute(claimed).first() is not None


def claim_or_kept(
    session: Session, request: KeyedRequest, *, now: datetime, ttl: timedelta
) -> KeptAnswer | None:
    """Claim the key (None), or find the answer kept for this same request; refused if the key
    is in flight (409) or was used for another request (422)."""
    this_key = (KEYS.c.caller == request.caller, KEYS.c.key == request.key)
    answer = (KEYS.c.status, KEYS.c.location, KEYS.c.etag, KEYS.c.body)
    for _ in range(2):  # a second time only after an expired key made way for this request
        if claim(session, request, now=now, ttl=ttl):
            return None
        found = session.execute(
            select(KEYS.c.fingerprint, KEYS.c.expires_at, *answer).where(*this_key)
        ).first()
        if found is None:
            raise IdempotencyKeyInUse()
        fingerprint, expires_at, *kept = found
        if expires_at <= now:
            # Deleted by this request unless another holds the row: one that is claiming the
            # key anew is in flight (409 at once, never a wait for its row lock).
            free = select(KEYS.c.key).where(*this_key).with_for_update(skip_locked=True)
            deleted = delete(KEYS).where(*this_key, KEYS.c.key.in_(free)).returning(KEYS.c.key)
            if session.execute(deleted).first() is None:
                raise IdempotencyKeyInUse()
            continue
        if fingerprint != request.fingerprint:
            raise IdempotencyKeyReused()
        return KeptAnswer(*kept)
    raise IdempotencyKeyInUse()  # claimed anew, and expired, within one request: retry later


def keep(session: Session, request: KeyedRequest, answer: KeptAnswer) -> None:
    """Store the answer in the key claimed by this transaction; it commits with the write."""
    session.execute(
        update(KEYS)
        .where(KEYS.c.caller == request.caller, KEYS.c.key == request.key)
        .values(**answer._asdict())
    )


def purge_expired(session: Session, *, now: datetime, limit: int) -> int:
    """Delete up to `limit` expired keys, oldest first (a range scan of the `expires_at`
    index); rows another transaction is deleting are skipped, not waited for."""
    expired = (
        select(KEYS.c.caller, KEYS.c.key)
        .where(KEYS.c.expires_at <= now)
        .order_by(KEYS.c.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = session.execute(delete(KEYS).where(tuple_(KEYS.c.caller, KEYS.c.key).in_(expired)))
    return int(result.rowcount)  # type: ignore[attr-defined]
