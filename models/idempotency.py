"""`idempotency_keys`: each POST sent with an `Idempotency-Key`, and the answer it was given,
written in the same transaction as the write it answers (`crud.idempotency`)."""

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.columns import UTCDateTime


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    # The primary key is the lookup: unique per caller, so callers never share a key.
    caller: Mapped[str] = mapped_column(String(64), primary_key=True)  # a SHA-256 digest, hex
    key: Mapped[str] = mapped_column(String(255), primary_key=True)  # the contract's limit
    # SHA-256 of the request's method, path and body: a retry must send the same request.
    fingerprint: Mapped[str] = mapped_column(String(64))
    # The answer: None only inside the transaction that claimed the key, never once committed.
    status: Mapped[int | None]
    location: Mapped[str | None] = mapped_column(String(2048))
    etag: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The bounded purge of expired keys reads this index in order, never the whole table.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
