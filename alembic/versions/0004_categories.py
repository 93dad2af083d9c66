"""Categories, and `products.category_id` naming one, without a long lock on `products`.

On PostgreSQL each step takes `products`' strongest lock only for a moment:
- the column is nullable with no default: adding it changes the catalog, not the rows;
- the foreign key is added `NOT VALID` (checked for new writes from then on, no scan), then
  `VALIDATE CONSTRAINT` scans the existing rows under a lock that lets reads and writes go on;
- the index is a plain `CREATE INDEX`, which blocks writes while it builds: on a large live
  table, build it first by hand with `CREATE INDEX CONCURRENTLY` under the same name, and this
  step skips it (`IF NOT EXISTS`).
SQLite cannot alter a constraint in place: batch mode copies `products` into a new table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEY = "fk_products_category_id_categories"
CATEGORY_INDEX = "ix_products_category_id_id"


def _on_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        "categories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_categories_version_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_categories")),
    )
    op.create_index("uq_categories_lower_name", "categories", [sa.text("lower(name)")], unique=True)
    op.create_index("ix_categories_name_id", "categories", ["name", "id"])

    column = sa.Column("category_id", sa.Integer(), nullable=True)
    if _on_postgresql():
        op.add_column("products", column)
        op.execute(
            f"ALTER TABLE products ADD CONSTRAINT {FOREIGN_KEY} FOREIGN KEY (category_id) "
            "REFERENCES categories (id) NOT VALID"
        )
        op.execute(f"ALTER TABLE products VALIDATE CONSTRAINT {FOREIGN_KEY}")
    else:
        with op.batch_alter_table("products") as batch:
            batch.add_column(column)
            batch.create_foreign_key(FOREIGN_KEY, "categories", ["category_id"], ["id"])
    op.create_index(CATEGORY_INDEX, "products", ["category_id", "id"], if_not_exists=True)


def downgrade() -> None:
    # The categories' indexes first: SQLite's batch copy of `products` reflects the table its
    # foreign key names, and its reflection cannot read an index on an expression.
    op.drop_index("ix_categories_name_id", table_name="categories")
    op.drop_index("uq_categories_lower_name", table_name="categories")
    op.drop_index(CATEGORY_INDEX, table_name="products")
    with op.batch_alter_table("products") as batch:
        batch.drop_constraint(FOREIGN_KEY, type_="foreignkey")
        batch.drop_column("category_id")
    op.drop_table("categories")
