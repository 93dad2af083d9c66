"""The columns every resource's table has in common: timestamps stamped by the service, and
the version behind its ETag. Each is an `Annotated` type carrying its `mapped_column()`
(SQLAlchemy's "Mapping Whole Column Declarations to Python Types"), so a model lists them in
its own column order: `created_at: Mapped[CreatedAt]`."""

from datetime import UTC, datetime
from typing import Annotated, Any

from sqlalchemy import DateTime, Dialect, func
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import mapped_column
from sqlalchemy.types import TypeDecorator


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _created_at(context: DefaultExecutionContext) -> datetime:
    # A new row's updated_at equals its created_at, not a few microseconds later.
    created: datetime = context.get_current_parameters()["created_at"]  # type: ignore[no-untyped-call]
    return created


class _SQLiteUTCDateTime(TypeDecorator[datetime]):
    """SQLite stores no time zone: its timestamps (all written in UTC) come back marked UTC."""

    impl = DateTime
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# PostgreSQL's timestamptz needs no processing: every transaction of the service runs in the UTC
# time zone (database.engine), so values arrive as UTC datetimes, ready to be written with "Z".
UTCDateTime = DateTime(timezone=True).with_variant(_SQLiteUTCDateTime(), "sqlite")

# Stamped by the service (microseconds, UTC) so both databases store one comparable format;
# SQLite's CURRENT_TIMESTAMP has whole seconds in another text layout, which would break
# keyset paging on ties. The server default still covers rows written by hand.
CreatedAt = Annotated[
    datetime, mapped_column(UTCDateTime, default=_utc_now, server_default=func.now())
]
UpdatedAt = Annotated[
    datetime,
    mapped_column(UTCDateTime, default=_created_at, onupdate=_utc_now, server_default=func.now()),
]
# Optimistic concurrency: +1 on every write; the ETag is this number.
Version = Annotated[int, mapped_column(default=1, server_default="1")]
