"""Indexes for listing: (sort key, id) B-trees, and trigram GIN indexes for `q` on PostgreSQL.

Chosen with EXPLAIN ANALYZE on 1M products (bench/README.md, the listing benchmark). On a large live
table, build them first by hand with CREATE INDEX CONCURRENTLY under the same names.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SORT_INDEXES = {
    "ix_products_price_id": ["price", "id"],
    "ix_products_quantity_id": ["quantity", "id"],
    "ix_products_created_at_id": ["created_at", "id"],
    "ix_products_updated_at_id": ["updated_at", "id"],
}
TRIGRAM_INDEXES = {"ix_products_name_trgm": "name", "ix_products_description_trgm": "description"}


def _on_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    for name, columns in SORT_INDEXES.items():
        op.create_index(name, "products", columns)
    if _on_postgresql():
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, column in TRIGRAM_INDEXES.items():
            op.create_index(
                name,
                "products",
                [column],
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            )


def downgrade() -> None:
    if _on_postgresql():
        # The pg_trgm extension stays: other objects in the database may use it.
        for name in TRIGRAM_INDEXES:
            op.drop_index(name, table_name="products")
    for name in SORT_INDEXES:
        op.drop_index(name, table_name="products")
