"""Every query on `products`. Writes commit here, before the route builds its response.

Each write to an existing product is one UPDATE/DELETE ... RETURNING whose WHERE clause carries
every condition (the `If-Match` versions, the stock floor): the database checks and writes in one
atomic step, so concurrent callers cannot interleave between a check and a write.
"""

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from sqlalchemy import BigInteger, cast, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crud.errors import (
    DuplicateSku,
    DuplicateSkuInBatch,
    InsufficientStock,
    ProductNotFound,
    StaleVersion,
)
from models import Product

SKU_CONSTRAINT = "uq_products_sku"
QUANTITY_MAX = 2_147_483_647  # `quantity` is a 4-byte integer


def _is_sku_violation(exc: IntegrityError) -> bool:
    # PostgreSQL names the constraint; SQLite only says "UNIQUE constraint failed: products.sku".
    constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
    return constraint == SKU_CONSTRAINT or "products.sku" in str(exc.orig)


@contextmanager
def _transaction(session: Session, *, sku: str | None = None) -> Iterator[None]:
    """Commit what the block wrote; on a unique-sku violation roll back and raise `DuplicateSku`."""
    try:
        yield
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        if _is_sku_violation(exc):
            raise DuplicateSku(sku) from exc
        raise


def _explain_no_match(
    session: Session,
    product_id: int,
    *,
    expected_versions: Collection[int] | None,
    delta: int | None = None,
) -> NoReturn:
    """A guarded write matched no row: find out which guard said no, for the right status."""
    current = session.execute(
        select(Product.version, Product.quantity).where(Product.id == product_id)
    ).one_or_none()
    if current is None:
        raise ProductNotFound(product_id)
    if delta is not None and (expected_versions is None or current.version in expected_versions):
        raise InsufficientStock(product_id, current.quantity, delta)
    raise StaleVersion(product_id, current.version)


def _write_one(
    session: Session,
    statement: Any,
    *,
    product_id: int,
    expected_versions: Collection[int] | None,
    sku: str | None = None,
    delta: int | None = None,
) -> Any:
    """Run one guarded UPDATE/DELETE ... RETURNING on one product and commit it."""
    if expected_versions is not None:
        statement = statement.where(Product.version.in_(expected_versions))
    with _transaction(session, sku=sku):
        row = session.scalars(statement).one_or_none()
        if row is None:
            session.rollback()
            _explain_no_match(session, product_id, expected_versions=expected_versions, delta=delta)
    return row


def get_product(session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise ProductNotFound(product_id)
    return product


def list_products(session: Session, *, skip: int, limit: int) -> Sequence[Product]:
    return session.scalars(select(Product).order_by(Product.id).offset(skip).limit(limit)).all()


def count_products(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Product)) or 0


def create_product(session: Session, *, values: Mapping[str, Any]) -> Product:
    product = Product(**values)
    with _transaction(session, sku=values.get("sku")):
        session.add(product)
    return product


def create_products(session: Session, *, rows: Sequence[Mapping[str, Any]]) -> Sequence[Product]:
    """Insert every row or none: one transaction, one set-based INSERT ... RETURNING."""
    repeated = _repeated_skus(rows)
    if repeated:
        raise DuplicateSkuInBatch(repeated, reason="appears more than once in this request")
    statement = insert(Product).returning(Product, sort_by_parameter_order=True)
    try:
        products = session.scalars(statement, [dict(row) for row in rows]).all()
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        if not _is_sku_violation(exc):
            raise
        # The constraint has decided; this query only names the items it refused.
        skus = {row["sku"] for row in rows if row.get("sku") is not None}
        taken = set(session.scalars(select(Product.sku).where(Product.sku.in_(skus))))
        conflicts = {i: row["sku"] for i, row in enumerate(rows) if row.get("sku") in taken}
        if not conflicts:  # the other product was deleted meanwhile; still refused
            raise DuplicateSku(None) from exc
        raise DuplicateSkuInBatch(conflicts, reason="already exists") from exc
    return products


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
) -> Product:
    """Apply `changes` (and version + 1) in one UPDATE ... RETURNING."""
    if not changes:
        current = get_product(session, product_id)
        if expected_versions is not None and current.version not in expected_versions:
            raise StaleVersion(product_id, current.version)
        return current
    statement = (
        update(Product)
        .where(Product.id == product_id)
        .values(**changes, version=Product.version + 1)
        .returning(Product)
        .execution_options(populate_existing=True)
    )
    product: Product = _write_one(
        session,
        statement,
        product_id=product_id,
        expected_versions=expected_versions,
        sku=changes.get("sku"),
    )
    return product


def change_stock(
    session: Session,
    product_id: int,
    *,
    delta: int,
    expected_versions: Collection[int] | None = None,
) -> Product:
    """`quantity += delta` in the database, refused (nothing changes) outside 0..QUANTITY_MAX."""
    # Computed as BIGINT so that the check itself cannot overflow the 4-byte column type.
    new_quantity = Product.quantity + cast(delta, BigInteger)
    statement = (
        update(Product)
        .where(Product.id == product_id, new_quantity.between(0, QUANTITY_MAX))
        .values(quantity=Product.quantity + delta, version=Product.version + 1)
        .returning(Product)
        .execution_options(populate_existing=True)
    )
    product: Product = _write_one(
        session,
        statement,
        product_id=product_id,
        expected_versions=expected_versions,
        delta=delta,
    )
    return product


def delete_product(
    session: Session, product_id: int, *, expected_versions: Collection[int] | None = None
) -> None:
    statement = delete(Product).where(Product.id == product_id).returning(Product.id)
    _write_one(session, statement, product_id=product_id, expected_versions=expected_versions)
