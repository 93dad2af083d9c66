"""Every query on `categories`, written as `crud.products` writes them."""

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crud import shared
from crud.errors import CategoryInUse, CategoryNotFound, DuplicateCategoryName
from models import Category, Product
from models.category import CATEGORY_SORTABLE_FIELDS, NAME_KEY_INDEX

RESOURCE = shared.Resource(
    Category,
    not_found=CategoryNotFound,
    sortable=CATEGORY_SORTABLE_FIELDS,
    conflicts={NAME_KEY_INDEX: lambda values: DuplicateCategoryName(values.get("name"))},
)
sort_keys = RESOURCE.sort_keys


@dataclass(frozen=True)
class CategoryFilters:
    q: str | None = None

    def where(self) -> list[ColumnElement[bool]]:
        if self.q is None:
            return []
        return [Category.name.ilike(f"%{shared.escape_like(self.q)}%", escape="\\")]


def get_category(session: Session, category_id: int) -> Category:
    category = session.get(Category, category_id)
    if category is None:
        raise CategoryNotFound(category_id)
    return category


def list_categories(
    session: Session, *, filters: CategoryFilters, paging: shared.Paging
) -> tuple[list[Category], int]:
    return shared.list_page(
        session, select(Category), of=Category, where=filters.where(), paging=paging
    )


def create_category(session: Session, *, values: Mapping[str, Any]) -> Category:
    category = Category(**values)
    session.add(category)
    try:
        session.flush()
    except IntegrityError as exc:
        raise RESOURCE.as_domain_error(exc, values) from exc
    return category


def update_category(
    session: Session,
    category_id: int,
    *,
    changes: Mapping[str, Any],
    expected_versions: Collection[int] | None = None,
) -> Category:
    category: Category = shared.update_one(
        session, RESOURCE, category_id, changes=changes, expected_versions=expected_versions
    )
    return category


def delete_category(
    session: Session, category_id: int, *, expected_versions: Collection[int] | None = None
) -> None:
    """Unless a product names it: the foreign key decides, in the same statement, so a product
    assigned to it meanwhile is never left naming a missing category."""

    def in_use() -> CategoryInUse:  # the delete was refused; this says how many products
        named = select(func.count()).where(Product.category_id == category_id)
        return CategoryInUse(category_id, session.execute(named).scalar_one())

    shared.delete_one(
        session, RESOURCE, category_id, expected_versions=expected_versions, in_use=in_use
    )
