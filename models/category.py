"""The `categories` table: the second resource, which products name by `category_id`."""

from sqlalchemy import CheckConstraint, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.columns import CreatedAt, UpdatedAt, Version
from models.product import DESCRIPTION_MAX_LENGTH, NAME_MAX_LENGTH

CATEGORY_SORTABLE_FIELDS = ("id", "name", "created_at", "updated_at")
NAME_KEY_INDEX = "uq_categories_lower_name"


class Category(Base):
    __tablename__ = "categories"
    __table_args__ = (
        Index("ix_categories_name_id", "name", "id"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH))
    description: Mapped[str | None] = mapped_column(String(DESCRIPTION_MAX_LENGTH))
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]
    version: Mapped[Version]


# Unique ignoring case, whatever runs concurrently; an expression index needs the class first.
Index(NAME_KEY_INDEX, func.lower(Category.name), unique=True)
