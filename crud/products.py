"""Every query on `products`. Writes commit here, before the route builds its response.

Every statement is Core, on the `products` table (`models.Product` is its schema): a request
reads or writes a few rows and answers with them, so rows come back as `ProductRecord`s
without the ORM's unit of work, identity map or per-instance state. The statements are built
once, with bound parameters, and reused.
"""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple, NoReturn

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Update,
    bindparam,
    cast,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crud import shared
from crud.errors import (
    DuplicateSku,
    DuplicateSkuInBatch,
    InsufficientStock,
    ProductNotFound,
    StaleVersion,
)
from models import Product
from models.product import INT4_MAX, SORTABLE_FIELDS

PRODUCTS = Product.metadata.tables[Product.__tablename__]
SKU_CONSTRAINT = "uq_products_sku"


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


@dataclass(frozen=True)
class ProductFilters:
    """What a listing keeps: each filter that is not None narrows it."""

    q: str | None = None
    sku: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock: bool | None = None

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
        return clauses


# The only columns a client can sort by: user text never reaches SQL as text.
SORTABLE = {field: PRODUCTS.c[field] for field in SORTABLE_FIELDS}

_BY_ID = shared.by_id(PRODUCTS)
_VERSION_GUARD = shared.version_guard(PRODUCTS)
_NEXT_VERSION = PRODUCTS.c.version + 1
_ROW_BY_ID = select(*PRODUCTS.c).where(_BY_ID)
_INSERT = insert(PRODUCTS).returning(*PRODUCTS.c)
# `quantity + delta`, computed as BIGINT so that the check itself cannot overflow the column.
_NEW_QUANTITY = PRODUCTS.c.quantity + cast(bindparam("delta", type_=Integer), BigInteger)


def _guarded(statement: Any, guarded: bool) -> Any:
    return statement.where(_VERSION_GUARD) if guarded else statement


# Each write in two forms, without and with the If-Match guard.
_STOCK = {
    guarded: _guarded(
        update(PRODUCTS)
        .where(_BY_ID, _NEW_QUANTITY.between(0, INT4_MAX))
        .values(quantity=PRODUCTS.c.quantity + bindparam("delta"), version=_NEXT_VERSION),
        guarded,
    ).returning(*PRODUCTS.c)
    for guarded in (False, True)
}
_DELETE = {
    guarded: _guarded(delete(PRODUCTS).where(_BY_ID), guarded).returning(PRODUCTS.c.id)
    for guarded in (False, True)
}


@lru_cache(maxsize=64)  # one per set of changed fields (at most 31), with and without If-Match
def _update_statement(fields: tuple[str, ...], guarded: bool) -> Update:
    # Parameters named `new_<field>`: SQLAlchemy reserves the column names for SET.
    assignments = {
        field: bindparam(f"new_{field}", type_=PRODUCTS.c[field].type) for field in fields
    }
    statement = update(PRODUCTS).where(_BY_ID).values({**assignments, "version": _NEXT_VERSION})
    updated: Update = _guarded(statement, guarded).returning(*PRODUCTS.c)
    return updated


def _explain(session: Session, product_id: int) -> NoReturn:
    shared.explain_no_match(session, PRODUCTS, product_id, not_found=ProductNotFound)


def read_product(session: Session, product_id: int) -> ProductRecord:
    """One product; `ProductNotFound` if there is none."""
    with shared.reading(session):
        row = session.execute(_ROW_BY_ID, {shared.ROW_ID: product_id}).one_or_none()
    if row is None:
        raise ProductNotFound(product_id)
    return ProductRecord._make(row)


def list_products(
    session: Session,
    *,
    filters: ProductFilters,
    sort: Sequence[shared.SortKey],
    after: Sequence[Any] | None = None,
    skip: int = 0,
    limit: int,
) -> tuple[list[ProductRecord], int]:
    """One page in `sort` order (offset paging with `skip`, keyset paging with `after`), and
    the number of all the products that match the filters."""
    return shared.list_page(
        session,
        PRODUCTS,
        where=filters.where(),
        keys=sort,
        after=after,
        skip=skip,
        limit=limit,
        record=ProductRecord._make,
    )


def sort_keys(requested: Sequence[tuple[str, bool]]) -> list[shared.SortKey]:
    """`requested` (field, descending) pairs as the columns to sort by, `id` breaking ties."""
    return shared.sort_keys(SORTABLE, requested)


def create_product(session: Session, *, values: Mapping[str, Any]) -> ProductRecord:
    sku = values.get("sku")
    with shared.transaction(
        session, PRODUCTS, conflicts={SKU_CONSTRAINT: lambda: DuplicateSku(sku)}
    ):
        row = session.execute(_INSERT, dict(values)).one()
    return ProductRecord._make(row)


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
        if shared.violated_constraint(exc, PRODUCTS) != SKU_CONSTRAINT:
            raise
        # The constraint has decided; this query only names the items it refused.
        skus = {row["sku"] for row in rows if row.get("sku") is not None}
        taken = set(session.scalars(select(PRODUCTS.c.sku).where(PRODUCTS.c.sku.in_(skus))))
        conflicts = {i: row["sku"] for i, row in enumerate(rows) if row.get("sku") in taken}
        if not conflicts:  # the other product was deleted meanwhile; still refused
            raise DuplicateSku(None) from exc
        raise DuplicateSkuInBatch(conflicts, reason="already exists") from exc
    return [ProductRecord._make(row) for row in created]


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
    if not changes:
        current = read_product(session, product_id)
        if expected_versions is not None and current.version not in expected_versions:
            raise StaleVersion("Product", product_id, current.version)
        return current
    fields = tuple(sorted(changes))
    sku = changes.get("sku")
    row = shared.write_one(
        session,
        PRODUCTS,
        _update_statement(fields, expected_versions is not None),
        {f"new_{field}": changes[field] for field in fields},
        row_id=product_id,
        expected_versions=expected_versions,
        explain=lambda: _explain(session, product_id),
        conflicts={SKU_CONSTRAINT: lambda: DuplicateSku(sku)},
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
    shared.write_one(
        session,
        PRODUCTS,
        _DELETE[expected_versions is not None],
        {},
        row_id=product_id,
        expected_versions=expected_versions,
        explain=lambda: _explain(session, product_id),
    )
