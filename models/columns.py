"""Columns every resource's table has: `created_at: Mapped[CreatedAt]`, `UpdatedAt`, `Version`."""

from datetime import UTC, datetime
from functools import partial
from typing import Annotated

from sqlalchemy import DateTime, Dialect, func
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import mapped_column
from sqlalchemy.types import TypeDecorator


class _UTCDateTime(TypeDecorator[datetime]):
    """A timestamp read back as a UTC datetime, whatever the session's time zone (PostgreSQL)
    or its lack (SQLite, where every value is written in UTC)."""

    impl = DateTime
    cache_ok = True
    python_type = datetime  # TypeDecorator's own is `object`: api.pagination reads this one

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _created_at(context: DefaultExecutionContext) -> datetime:
    # A new row's updated_at equals its created_at, not a few microseconds later.
    created: datetime = context.get_current_parameters()["created_at"]  # type: ignore[no-untyped-call]
    return created


UTCDateTime = _UTCDateTime(timezone=True)
# Stamped by the service (microseconds, UTC) so both databases store one comparable format;
# SQLite's CURRENT_TIMESTAMP has whole seconds in another text layout, which would break
# keyset paging on ties. The server default still covers rows written by hand.
utc_now = partial(datetime.now, UTC)
CreatedAt = Annotated[
    datetime, mapped_column(UTCDateTime, default=utc_now, server_default=func.now())
]
UpdatedAt = Annotated[
    datetime,
    mapped_column(UTCDateTime, default=_created_at, onupdate=utc_now, server_default=func.now()),
]
# Optimistic concurrency: +1 on every write; the ETag is this number.
Version = Annotated[int, mapped_column(default=1, server_default="1")]
