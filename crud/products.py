"""Every query on `products`. Writes commit here, before the route builds its response.

Two kinds of query, one way each:
- A query of the `products` table alone — every write, and every read without `expand` — is
  a Core statement (`models.Product` is its schema): a request reads or writes a few rows and
  answers with them, so rows come back as `ProductRecord`s without the ORM's unit of work,
  identity map or per-instance state. The statements are built once and reused.
- A read that embeds each product's category (`expand=category`) is an ORM query of
  `Product` with `joinedload(Product.category)`: the relationship loading the guide teaches,
  one `LEFT OUTER JOIN` in the same statement whatever the page size. The relationship is
  `lazy="raise"`, so nothing reads it without loading it here first.
"""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple, NoReturn

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    bindparam,
    cast,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from crud import shared
from crud.errors import (
    DuplicateSku,
    DuplicateSkuInBatch,
    InsufficientStock,
    ProductNotFound,
    StaleVersion,
    UnknownCategory,
)
from models import Category, Product
from models.product import INT4_MAX, SORTABLE_FIELDS

PRODUCTS = Product.metadata.tables[Product.__tablename__]
RESOURCE = shared.Resource(PRODUCTS, not_found=ProductNotFound, sortable=SORTABLE_FIELDS)
SKU_CONSTRAINT = "uq_products_sku"
CATEGORY_CONSTRAINT = "fk_products_category_id_categories"
# Each product with its category (or None), from one statement.
_WITH_CATEGORY = select(Product).options(joinedload(Product.category))


class ProductRecord(NamedTuple):
    """One row of `products`, as every function here returns it (the table's column order)."""

    id: int
    sku: str | None
    name: str
    description: str | None
    price: Decimal
    quantity: int
    created_at: datetime
    updated_at: datetime
    version: int
    category_id: int | None


@dataclass(frozen=True)
class ProductFilters:
    """What a listing keeps: each filter that is not None narrows it."""

    q: str | None = None
    sku: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock: bool | None = None
    category_id: int | None = None

    def where(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        if self.q is not None:
            pattern = f"%{shared.escape_like(self.q)}%"
            clauses.append(
                or_(
                    PRODUCTS.c.name.ilike(pattern, escape="\\"),
                    PRODUCTS.c.description.ilike(pattern, escape="\\"),
                )
            )
        if self.sku is not None:
            clauses.append(PRODUCTS.c.sku == self.sku)
        if self.min_price is not None:
            clauses.append(PRODUCTS.c.price >= self.min_price)
        if self.max_price is not None:
            clauses.append(PRODUCTS.c.price <= self.max_price)
        if self.in_stock is not None:
            clauses.append(PRODUCTS.c.quantity > 0 if self.in_stock else PRODUCTS.c.quantity == 0)
        if self.category_id is not None:
            clauses.append(PRODUCTS.c.category_id == self.category_id)
        return clauses


# `quantity + delta`, computed as BIGINT so that the check itself cannot overflow the column.
_NEW_QUANTITY = PRODUCTS.c.quantity + cast(bindparam("delta", type_=Integer), BigInteger)
# The stock change, without and with the If-Match guard.
_STOCK = {
    guarded: RESOURCE.guarded(
        update(PRODUCTS)
        .where(RESOURCE.by_id, _NEW_QUANTITY.between(0, INT4_MAX))
        .values(quantity=PRODUCTS.c.quantity + bindparam("delta"), version=RESOURCE.next_version),
        guarded,
    ).returning(*PRODUCTS.c)
    for guarded in (False, True)
}


def _conflicts(values: Mapping[str, Any]) -> shared.Conflicts:
    """What the constraints of a product write mean, for the values it wrote."""
    return {
        SKU_CONSTRAINT: lambda: DuplicateSku(values.get("sku")),
        CATEGORY_CONSTRAINT: lambda: UnknownCategory({None: values.get("category_id")}),
    }


def read_product(
    session: Session, product_id: int, *, with_category: bool = False
) -> ProductRecord | Product:
    """One product; `ProductNotFound` if there is none. With `with_category`, a `Product`
    with its category loaded, in the same statement."""
    if not with_category:
        return ProductRecord._make(shared.read_row(session, RESOURCE, product_id))
    with shared.reading(session):
        product = session.execute(
            _WITH_CATEGORY.where(RESOURCE.by_id), {shared.ROW_ID: product_id}
        ).scalar_one_or_none()
    if product is None:
        raise ProductNotFound(product_id)
    return product


def list_products(
    session: Session,
    *,
    filters: ProductFilters,
    paging: shared.Paging,
    with_category: bool = False,
) -> tuple[Sequence[ProductRecord | Product], int]:
    """One page of the products that match the filters, and how many match in all; with
    `with_category`, as `Product`s with their category loaded, in the same statement."""
    if with_category:
        return shared.list_page(
            session,
            PRODUCTS,
            where=filters.where(),
            paging=paging,
            rows=_WITH_CATEGORY,
            record=_first,
        )
    return shared.list_page(
        session, PRODUCTS, where=filters.where(), paging=paging, record=ProductRecord._make
    )


def _first(items: Sequence[Any]) -> Product:
    product: Product = items[0]
    return product


def sort_keys(requested: Sequence[tuple[str, bool]]) -> list[shared.SortKey]:
    """`requested` (field, descending) pairs as the columns to sort by, `id` breaking ties."""
    return shared.sort_keys(RESOURCE, requested)


def create_product(session: Session, *, values: Mapping[str, Any]) -> ProductRecord:
    return ProductRecord._make(
        shared.insert_row(session, RESOURCE, values, conflicts=_conflicts(values))
    )


def create_products(session: Session, *, rows: Sequence[Mapping[str, Any]]) -> list[ProductRecord]:
    """Insert every row or none, in request order, in one transaction."""
    repeated = _repeated_skus(rows)
    if repeated:
        raise DuplicateSkuInBatch(repeated, reason="appears more than once in this request")
    statement = insert(PRODUCTS).returning(*PRODUCTS.c, sort_by_parameter_order=True)
    try:
        with shared.transaction(session, PRODUCTS):
            created = session.execute(statement, [dict(row) for row in rows]).all()
    except IntegrityError as exc:
        violated = shared.violated_constraint(exc, PRODUCTS)
        if violated == CATEGORY_CONSTRAINT:
            raise _unknown_categories(session, rows) from exc
        if violated != SKU_CONSTRAINT:
            raise
        # The constraint has decided; this query only names the items it refused.
        skus = {row["sku"] for row in rows if row.get("sku") is not None}
        taken = set(session.scalars(select(PRODUCTS.c.sku).where(PRODUCTS.c.sku.in_(skus))))
        conflicts = {i: row["sku"] for i, row in enumerate(rows) if row.get("sku") in taken}
        if not conflicts:  # the other product was deleted meanwhile; still refused
            raise DuplicateSku(None) from exc
        raise DuplicateSkuInBatch(conflicts, reason="already exists") from exc
    return [ProductRecord._make(row) for row in created]


def _unknown_categories(session: Session, rows: Sequence[Mapping[str, Any]]) -> UnknownCategory:
    """The items of a bulk create whose category the foreign key refused (it has decided;
    this query only names them)."""
    named = {row["category_id"] for row in rows if row.get("category_id") is not None}
    existing = set(session.scalars(select(Category.id).where(Category.id.in_(named))))
    unknown: dict[int | None, int | None] = {
        index: row["category_id"]
        for index, row in enumerate(rows)
        if row.get("category_id") is not None and row["category_id"] not in existing
    }
    # Empty only if a category of that id was created meanwhile: still refused.
    return UnknownCategory(unknown or {None: None})


def _repeated_skus(rows: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    positions: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        if row.get("sku") is not None:
            positions.setdefault(row["sku"], []).append(index)
    repeated = {i: sku for sku, indexes in positions.items() if len(indexes) > 1 for i in indexes}
    return dict(sorted(repeated.items()))


def update_product(
    session: Session,
    product_id: int,
    *,
    changes: Mapping[str, Any],
    expected_versions: Collection[int] | None = None,
) -> ProductRecord:
    """Apply `changes` (and version + 1) in one UPDATE ... RETURNING."""
    row = shared.update_row(
        session,
        RESOURCE,
        product_id,
        changes=changes,
        expected_versions=expected_versions,
        conflicts=_conflicts(changes),
    )
    return ProductRecord._make(row)


def change_stock(
    session: Session,
    product_id: int,
    *,
    delta: int,
    expected_versions: Collection[int] | None = None,
) -> ProductRecord:
    """`quantity += delta` in the database, refused (nothing changes) outside 0..INT4_MAX."""

    def explain() -> NoReturn:
        current = read_product(session, product_id)
        if expected_versions is None or current.version in expected_versions:
            raise InsufficientStock(product_id, current.quantity, delta)
        raise StaleVersion("Product", product_id, current.version)

    row = shared.write_one(
        session,
        PRODUCTS,
        _STOCK[expected_versions is not None],
        {"delta": delta},
        row_id=product_id,
        expected_versions=expected_versions,
        explain=explain,
    )
    return ProductRecord._make(row)


def delete_product(
    session: Session, product_id: int, *, expected_versions: Collection[int] | None = None
) -> None:
    shared.delete_row(session, RESOURCE, product_id, expected_versions=expected_versions)
