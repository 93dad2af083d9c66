"""Step 3 of the guide: the `products` table."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Dialect, Index, Numeric, String, func
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from models.base import Base

SKU_MAX_LENGTH = 64
NAME_MAX_LENGTH = 100
DESCRIPTION_MAX_LENGTH = 500
PRICE_PRECISION, PRICE_SCALE = 10, 2
INT4_MAX = 2_147_483_647  # `quantity`, `version` and the ids are 4-byte integers
# The orders a listing may be sorted in: each is served by an index below.
SORTABLE_FIELDS = ("id", "name", "price", "quantity", "created_at", "updated_at")


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


# PostgreSQL's timestamptz needs no processing: the service's sessions use the UTC time zone
# (database.engine), so values arrive as UTC datetimes, ready to be written with "Z".
UTCDateTime = DateTime(timezone=True).with_variant(_SQLiteUTCDateTime(), "sqlite")


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        # The guide's composite index for "name, then price" lookups.
        Index("ix_products_name_price", "name", "price"),
        # Listing: one (key, id) B-tree per sort order, so that a page (offset 0 or a keyset
        # cursor at any depth) is an index range scan. `name` is served by the guide's index
        # plus an incremental sort on id. Chosen with EXPLAIN ANALYZE on 1M rows (bench/README.md).
        Index("ix_products_price_id", "price", "id"),
        Index("ix_products_quantity_id", "quantity", "id"),
        Index("ix_products_created_at_id", "created_at", "id"),
        Index("ix_products_updated_at_id", "updated_at", "id"),
        # `q` (ILIKE '%text%') on PostgreSQL: trigram GIN indexes; SQLite scans instead.
        Index(
            "ix_products_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
        Index(
            "ix_products_description_trgm",
            "description",
            postgresql_using="gin",
            postgresql_ops={"description": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
        # The API validates these first; the database keeps them true whatever the client.
        CheckConstraint("price > 0", name="price_positive"),
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint("version >= 1", name="version_positive"),
    )
    # A primary key is indexed already; the guide's `index=True` on it would add a duplicate.
    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str | None] = mapped_column(String(SKU_MAX_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH), index=True)
    description: Mapped[str | None] = mapped_column(String(DESCRIPTION_MAX_LENGTH))
    price: Mapped[Decimal] = mapped_column(Numeric(PRICE_PRECISION, PRICE_SCALE))
    quantity: Mapped[int] = mapped_column(default=0, server_default="0")
    # Stamped by the service (microseconds, UTC) so both databases store one comparable format;
    # SQLite's CURRENT_TIMESTAMP has whole seconds in another text layout, which would break
    # keyset paging on ties. The server default still covers rows written by hand.
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=_utc_now, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime,
        default=_created_at,
        onupdate=_utc_now,
        server_default=func.now(),
    )
    # Optimistic concurrency: +1 on every write; the ETag is this number.
    version: Mapped[int] = mapped_column(default=1, server_default="1")
