"""Step 3 of the guide: the `products` table."""

from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base
from models.columns import CreatedAt, UpdatedAt, Version

if TYPE_CHECKING:
    from models.category import Category

SKU_MAX_LENGTH = 64
NAME_MAX_LENGTH = 100
DESCRIPTION_MAX_LENGTH = 500
INT4_MAX = 2_147_483_647  # `quantity`, `version` and the ids are 4-byte integers
# The orders a listing may be sorted in: each is served by an index below.
SORTABLE_FIELDS = ("id", "name", "price", "quantity", "created_at", "updated_at")


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        # The guide's composite index for "name, then price" lookups.
        Index("ix_products_name_price", "name", "price"),
        # One (key, id) B-tree per sort order: a page at any cursor depth is an index range
        # scan (`name`: the guide's index, then an incremental sort on id; bench/README.md).
        Index("ix_products_price_id", "price", "id"),
        Index("ix_products_quantity_id", "quantity", "id"),
        Index("ix_products_created_at_id", "created_at", "id"),
        Index("ix_products_updated_at_id", "updated_at", "id"),
        # `category_id = N` in id order, and the foreign key's lookup when a category goes.
        Index("ix_products_category_id_id", "category_id", "id"),
        # `q` (ILIKE '%text%') on PostgreSQL: trigram GIN indexes; SQLite scans instead.
        *(
            Index(
                f"ix_products_{column}_trgm",
                column,
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            ).ddl_if(dialect="postgresql")
            for column in ("name", "description")
        ),
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
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    quantity: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]
    version: Mapped[Version]
    # Nullable, and last: migration 0004 adds it to a live table without rewriting it.
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    # Never loaded lazily: a query that needs it joins it, and any other read raises.
    category: Mapped["Category | None"] = relationship(lazy="raise")
