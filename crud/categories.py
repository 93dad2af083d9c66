"""Every query on `categories`: Core statements on the table, rows as `CategoryRecord`s, as
in `crud.products` (its docstring says why). Writes commit here."""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from crud import shared
from crud.errors import CategoryInUse, CategoryNotFound, DuplicateCategoryName
from crud.products import CATEGORY_CONSTRAINT, PRODUCTS
from models import Category
from models.category import CATEGORY_SORTABLE_FIELDS, NAME_KEY_INDEX

CATEGORIES = Category.metadata.tables[Category.__tablename__]
RESOURCE = shared.Resource(
    CATEGORIES, not_found=CategoryNotFound, sortable=CATEGORY_SORTABLE_FIELDS
)


class CategoryRecord(NamedTuple):
    """One row of `categories`, as every function here returns it (the table's column order)."""

    id: int
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime
    version: int


@dataclass(frozen=True)
class CategoryFilters:
    """What a listing keeps: `q`, a case-insensitive substring of the name."""

    q: str | None = None

    def where(self) -> list[ColumnElement[bool]]:
        if self.q is None:
            return []
        return [CATEGORIES.c.name.ilike(f"%{shared.escape_like(self.q)}%", escape="\\")]


def _conflicts(values: Mapping[str, Any]) -> shared.Conflicts:
    return {NAME_KEY_INDEX: lambda: DuplicateCategoryName(values.get("name"))}


def read_category(session: Session, category_id: int) -> CategoryRecord:
    """One category; `CategoryNotFound` if there is none."""
    return CategoryRecord._make(shared.read_row(session, RESOURCE, category_id))


def list_categories(
    session: Session, *, filters: CategoryFilters, paging: shared.Paging
) -> tuple[list[CategoryRecord], int]:
    """One page of the categories that match the filters, and how many match in all."""
    return shared.list_page(
        session, CATEGORIES, where=filters.where(), paging=paging, record=CategoryRecord._make
    )


def sort_keys(requested: Sequence[tuple[str, bool]]) -> list[shared.SortKey]:
    return shared.sort_keys(RESOURCE, requested)


def create_category(session: Session, *, values: Mapping[str, Any]) -> CategoryRecord:
    row = shared.insert_row(session, RESOURCE, values, conflicts=_conflicts(values))
    return CategoryRecord._make(row)


def update_category(
    session: Session,
    category_id: int,
    *,
    changes: Mapping[str, Any],
    expected_versions: Collection[int] | None = None,
) -> CategoryRecord:
    row = shared.update_row(
        session,
        RESOURCE,
        category_id,
        changes=changes,
        expected_versions=expected_versions,
        conflicts=_conflicts(changes),
    )
    return CategoryRecord._make(row)


def delete_category(
    session: Session, category_id: int, *, expected_versions: Collection[int] | None = None
) -> None:
    """Delete it unless a product names it: the foreign key decides, in the same statement,
    so a product assigned to it meanwhile is never left naming a missing category."""

    def in_use() -> CategoryInUse:
        # The delete was refused and rolled back; this only says how many products name it.
        named = (
            select(func.count()).select_from(PRODUCTS).where(PRODUCTS.c.category_id == category_id)
        )
        with shared.reading(session):
            return CategoryInUse(category_id, session.execute(named).scalar_one())

    shared.delete_row(
        session,
        RESOURCE,
        category_id,
        expected_versions=expected_versions,
        conflicts={CATEGORY_CONSTRAINT: in_use},
    )
