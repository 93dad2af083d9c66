"""Every query on `categories`, as `crud.products` writes them (its docstring says how)."""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from crud import shared
from crud.errors import CategoryInUse, CategoryNotFound, DuplicateCategoryName
from models import Category, Product
from models.category import CATEGORY_SORTABLE_FIELDS, NAME_KEY_INDEX

RESOURCE = shared.Resource(
    Category,
    not_found=CategoryNotFound,
    sortable={field: getattr(Category, field) for field in CATEGORY_SORTABLE_FIELDS},
)


@dataclass(frozen=True)
class CategoryFilters:
    """What a listing keeps: `q`, a case-insensitive substring of the name."""

    q: str | None = None

    def where(self) -> list[ColumnElement[bool]]:
        if self.q is None:
            return []
        return [Category.name.ilike(f"%{shared.escape_like(self.q)}%", escape="\\")]


def _conflicts(values: Mapping[str, Any]) -> shared.Conflicts:
    return {NAME_KEY_INDEX: lambda: DuplicateCategoryName(values.get("name"))}


def get_category(session: Session, category_id: int) -> Category:
    """One category; `CategoryNotFound` if there is none."""
    category = session.get(Category, category_id)
    if category is None:
        raise CategoryNotFound(category_id)
    return category


def list_categories(
    session: Session, *, filters: CategoryFilters, paging: shared.Paging
) -> tuple[list[Category], int]:
    """One page of the categories that match the filters, and how many match in all."""
    return shared.list_page(
        session, select(Category), of=Category, where=filters.where(), paging=paging
    )


def sort_keys(requested: Sequence[tuple[str, bool]]) -> list[shared.SortKey]:
    return shared.sort_keys(RESOURCE, requested)


def create_category(session: Session, *, values: Mapping[str, Any]) -> Category:
    return shared.insert(session, Category(**values), lambda: _conflicts(values))


def update_category(
    session: Session,
    category_id: int,
    *,
    changes: Mapping[str, Any],
    expected_versions: Collection[int] | None = None,
) -> Category:
    category: Category = shared.update_one(
        session,
        RESOURCE,
        category_id,
        changes=changes,
        expected_versions=expected_versions,
        conflicts=_conflicts(changes),
    )
    return category


def delete_category(
    session: Session, category_id: int, *, expected_versions: Collection[int] | None = None
) -> None:
    """Delete it unless a product names it: the foreign key decides, in the same statement,
    so a product assigned to it meanwhile is never left naming a missing category."""

    def in_use() -> CategoryInUse:
        # The delete was refused; this only says how many products name it.
        named = select(func.count()).where(Product.category_id == category_id)
        return CategoryInUse(category_id, session.execute(named).scalar_one())

    shared.delete_one(
        session, RESOURCE, category_id, expected_versions=expected_versions, in_use=in_use
    )
