"""Every query on `products`, in the ORM as the guide teaches it; one Core `UPDATE ...
RETURNING` where a single atomic statement is the lesson (If-Match, stock). Nothing here
commits: the request's session dependency does. `Product.category` is loaded eagerly
(`joinedload`) where it is wanted, never lazily (the guide's N+1 lesson)."""

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NoReturn

from sqlalchemy import BigInteger, ColumnElement, cast, or_, select
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

SKU_CONSTRAINT = "uq_products_sku"
CATEGORY_CONSTRAINT = "fk_products_category_id_categories"
RESOURCE = shared.Resource(
    Product,
    not_found=ProductNotFound,
    sortable=SORTABLE_FIELDS,
    conflicts={
        SKU_CONSTRAINT: lambda values: DuplicateSku(values.get("sku")),
        CATEGORY_CONSTRAINT: lambda values: UnknownCategory({None: values.get("category_id")}),
    },
)
sort_keys = RESOURCE.sort_keys


@dataclass(frozen=True)
class ProductFilters:
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
                    Product.name.ilike(pattern, escape="\\"),
                    Product.description.ilike(pattern, escape="\\"),
                )
            )
        if self.sku is not None:
            clauses.append(Product.sku == self.sku)
        if self.min_price is not None:
            clauses.append(Product.price >= self.min_price)
        if self.max_price is not None:
            clauses.append(Product.price <= self.max_price)
        if self.in_stock is not None:
            clauses.append(Product.quantity > 0 if self.in_stock else Product.quantity == 0)
        if self.category_id is not None:
            clauses.append(Product.category_id == self.category_id)
        return clauses


def get_product(session: Session, product_id: int, *, with_category: bool = False) -> Product:
    """One product (with its category, in the same statement); `ProductNotFound` if none."""
    options = [joinedload(Product.category)] if with_category else None
    product = session.get(Product, product_id, options=options)
    if product is None:
        raise ProductNotFound(product_id)
    return product


def list_products(
    session: Session,
    *,
    filters: ProductFilters,
    paging: shared.Paging,
    with_category: bool = False,
) -> tuple[list[Product], int]:
    rows = select(Product)
    if with_category:
        rows = rows.options(joinedload(Product.category))
    return shared.list_page(session, rows, of=Product, where=filters.where(), paging=paging)


def create_product(session: Session, *, values: Mapping[str, Any]) -> Product:
    product = Product(**values)
    session.add(product)
    try:
        session.flush()  # the INSERT: the database assigns the id and checks the constraints
    except IntegrityError as exc:
        raise RESOURCE.as_domain_error(exc, values) from exc
    return product


def create_products(session: Session, *, rows: Sequence[Mapping[str, Any]]) -> list[Product]:
    """Insert every row or none, in request order."""
    if repeated := _repeated_skus(rows):
        raise DuplicateSkuInBatch(repeated, reason="appears more than once in this request")
    products = [Product(**row) for row in rows]
    try:
        # In a savepoint, so that the transaction can still ask which items were refused.
        with session.begin_nested():
            session.add_all(products)
    except IntegrityError as exc:
        violated = shared.violated_constraint(exc, Product)
        if violated == CATEGORY_CONSTRAINT:
            raise _unknown_categories(session, rows) from exc
        if violated != SKU_CONSTRAINT:
            raise
        raise _taken_skus(session, rows) from exc
    return products


def _repeated_skus(rows: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """The items whose sku another item of the same request names too, by position."""
    skus = [row.get("sku") for row in rows]
    counts = Counter(skus)
    return {i: sku for i, sku in enumerate(skus) if sku is not None and counts[sku] > 1}


def _taken_skus(session: Session, rows: Sequence[Mapping[str, Any]]) -> Exception:
    """The items of a bulk create whose sku was refused (the constraint decided)."""
    skus = {row["sku"] for row in rows if row.get("sku") is not None}
    taken = set(session.scalars(select(Product.sku).where(Product.sku.in_(skus))))
    conflicts = {i: row["sku"] for i, row in enumerate(rows) if row.get("sku") in taken}
    if not conflicts:  # the other product was deleted meanwhile; still refused
        return DuplicateSku(None)
    return DuplicateSkuInBatch(conflicts, reason="already exists")


def _unknown_categories(session: Session, rows: Sequence[Mapping[str, Any]]) -> UnknownCategory:
    named = {row["category_id"] for row in rows if row.get("category_id") is not None}
    existing = set(session.scalars(select(Category.id).where(Category.id.in_(named))))
    unknown: dict[int | None, int | None] = {
        index: row["category_id"]
        for index, row in enumerate(rows)
        if row.get("category_id") is not None and row["category_id"] not in existing
    }
    # Empty only if a category of that id was created meanwhile: still refused.
    return UnknownCategory(unknown or {None: None})


def update_product(
    session: Session,
    product_id: int,
    *,
    changes: Mapping[str, Any],
    expected_versions: Collection[int] | None = None,
) -> Product:
    product: Product = shared.update_one(
        session, RESOURCE, product_id, changes=changes, expected_versions=expected_versions
    )
    return product


def change_stock(
    session: Session,
    product_id: int,
    *,
    delta: int,
    expected_versions: Collection[int] | None = None,
) -> Product:
    """`quantity += delta` in the database, refused (nothing changes) outside 0..INT4_MAX."""

    def explain() -> NoReturn:
        current = get_product(session, product_id)
        if expected_versions is None or current.version in expected_versions:
            raise InsufficientStock(product_id, current.quantity, delta)
        raise StaleVersion("Product", product_id, current.version)

    # Computed as BIGINT, so that the check itself cannot overflow the column.
    new_quantity = Product.quantity + cast(delta, BigInteger)
    product: Product = shared.update_one(
        session,
        RESOURCE,
        product_id,
        changes={"quantity": Product.quantity + delta},
        expected_versions=expected_versions,
        where=[new_quantity.between(0, INT4_MAX)],
        explain=explain,
    )
    return product


def delete_product(
    session: Session, product_id: int, *, expected_versions: Collection[int] | None = None
) -> None:
    shared.delete_one(session, RESOURCE, product_id, expected_versions=expected_versions)
