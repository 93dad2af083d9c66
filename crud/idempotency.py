"""Every query on `idempotency_keys`: a POST's answer, kept with its write, for its retries.

A keyed request first *claims* its key: one `INSERT` into the primary key (caller, key), the
first statement of the request's transaction, before the write. The write follows in the same
transaction, then the answer is stored in the claimed row and all of it commits at once
(`keep`). So the unique key decides, not a check-then-insert: however many retries race, one
claims and the others find its answer, and a crash leaves neither the write nor the key.
How each database makes the others wait or step aside: docs/design.md, "Idempotent retries".
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    Insert,
    bindparam,
    delete,
    func,
    null,
    select,
    true,
    tuple_,
    update,
)
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
    """An answer as it is kept and replayed: the status, the headers that matter, the body."""

    status: int
    location: str | None
    etag: str | None
    body: bytes


# Parameters are named `of_<column>` and `new_<column>`: SQLAlchemy reserves the column names.
_THIS_KEY = (KEYS.c.caller == bindparam("of_caller")) & (KEYS.c.key == bindparam("of_key"))
_NEW_ROW = {
    "caller": bindparam("of_caller", type_=KEYS.c.caller.type),
    "key": bindparam("of_key", type_=KEYS.c.key.type),
    "fingerprint": bindparam("of_fingerprint", type_=KEYS.c.fingerprint.type),
    "created_at": bindparam("now", type_=KEYS.c.created_at.type),
    "expires_at": bindparam("expires_at", type_=KEYS.c.expires_at.type),
}


def _claim_statement(dialect: Any, *, advisory_lock: bool) -> Insert:
    """`INSERT ... SELECT ... ON CONFLICT (caller, key) DO UPDATE ... WHERE expired`: a new key
    is inserted, an expired one taken over as new; a live one is left alone (no row returned).

    On PostgreSQL the SELECT inserts only if `pg_try_advisory_xact_lock` takes the key's lock,
    which is held until the transaction ends: a retry of a request still in flight returns at
    once, where the INSERT would wait on the unique index for the other transaction to end.
    SQLite needs no lock: one writer at a time. Its upsert wants the SELECT to have a WHERE.
    """
    claimable = (
        func.pg_try_advisory_xact_lock(bindparam("lock_id", type_=BigInteger), type_=Boolean)
        if advisory_lock
        else true()
    )
    statement = dialect.insert(KEYS).from_select(
        list(_NEW_ROW), select(*_NEW_ROW.values()).where(claimable)
    )
    taken_over = {
        "fingerprint": statement.excluded.fingerprint,
        "status": null(),
        "location": null(),
        "etag": null(),
        "body": null(),
        "created_at": statement.excluded.created_at,
        "expires_at": statement.excluded.expires_at,
    }
    claimed: Insert = statement.on_conflict_do_update(
        index_elements=[KEYS.c.caller, KEYS.c.key],
        set_=taken_over,
        where=KEYS.c.expires_at <= bindparam("now", type_=KEYS.c.expires_at.type),
    ).returning(KEYS.c.key)
    return claimed


_CLAIM = {
    "postgresql": _claim_statement(postgresql, advisory_lock=True),
    "sqlite": _claim_statement(sqlite, advisory_lock=False),
}
_KEPT = select(KEYS.c.fingerprint, KEYS.c.status, KEYS.c.location, KEYS.c.etag, KEYS.c.body).where(
    _THIS_KEY, KEYS.c.expires_at > bindparam("now", type_=KEYS.c.expires_at.type)
)
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


def _of(request: KeyedRequest) -> dict[str, str]:
    return {"of_caller": request.caller, "of_key": request.key}


def _take(session: Session, request: KeyedRequest, *, now: datetime, ttl: timedelta) -> bool:
    """Claim the key for the session's transaction; False if it is not free."""
    statement = _CLAIM[session.get_bind().dialect.name]
    parameters = {
        **_of(request),
        "of_fingerprint": request.fingerprint,
        "now": now,
        "expires_at": now + ttl,
        "lock_id": request.lock_id,
    }
    return session.execute(statement, parameters).first() is not None


def claim(
    session: Session, request: KeyedRequest, *, now: datetime, ttl: timedelta
) -> KeptAnswer | None:
    """Claim `request`'s key, or find the answer kept for it.

    None: the key is claimed in the session's transaction, which the request's write now joins
    and `keep` commits. A kept answer for the same request is returned to be replayed (the
    transaction ended, nothing written). `IdempotencyKeyReused` if it was kept for another
    request, `IdempotencyKeyInUse` while the request that claimed it is still in flight.
    """
    if _take(session, request, now=now, ttl=ttl):
        return None
    row = session.execute(_KEPT, {**_of(request), "now": now}).one_or_none()
    session.rollback()
    if row is None:
        # PostgreSQL: another transaction holds the key's lock (and has not committed). It may
        # still fail and keep nothing, so the answer is "not yet", not "never".
        raise IdempotencyKeyInUse()
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
) -> bool:
    """Keep the answer of a write that was refused (and rolled back), in a transaction of its
    own: claim the key again and store the answer. False when it is no longer free (a retry
    claimed it meanwhile): nothing was written, so that retry's answer is the one kept."""
    session.rollback()
    if not _take(session, request, now=now, ttl=ttl):
        session.rollback()
        return False
    keep(session, request, answer)
    return True


def purge_expired(session: Session, *, now: datetime, limit: int) -> int:
    """Delete up to `limit` expired keys, oldest first; how many were deleted.

    A range scan of the `expires_at` index, never the whole table. On PostgreSQL, rows locked by
    another purge or by a request taking an expired key over are skipped, not waited for.
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
