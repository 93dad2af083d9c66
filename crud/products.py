"""Every query on `products`. Writes commit here, before the route builds its response."""

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crud.errors import DuplicateSku, ProductNotFound, StaleVersion
from models import Product

SKU_CONSTRAINT = "uq_products_sku"


def _is_sku_violation(exc: IntegrityError) -> bool:
    # PostgreSQL names the constraint; SQLite only says "UNIQUE constraint failed: products.sku".
    constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
    return constraint == SKU_CONSTRAINT or "products.sku" in str(exc.orig)


@contextmanager
def _transaction(session: Session, *, sku: str | None) -> Iterator[None]:
    """Commit what the block wrote; on a unique-sku violation roll back and raise `DuplicateSku`."""
    try:
        yield
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        if _is_sku_violation(exc):
            raise DuplicateSku(sku) from exc
        raise


def _write_returning(
    session: Session, statement: Any, *, product_id: int, sku: str | None = None
) -> Any:
    """Run one UPDATE/DELETE ... RETURNING on one product and commit it."""
    with _transaction(session, sku=sku):
        row = session.scalars(statement).one_or_none()
        if row is None:
            session.rollback()
            _raise_missing_or_stale(session, product_id)
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


def _raise_missing_or_stale(session: Session, product_id: int) -> NoReturn:
    """After a conditional write matched no row: say whether the row is gone or has moved on."""
    current = session.scalar(select(Product.version).where(Product.id == product_id))
    if current is None:
        raise ProductNotFound(product_id)
    raise StaleVersion(product_id, current)


def update_product(
    session: Session,
    product_id: int,
    *,
    changes: Mapping[str, Any],
    expected_versions: Collection[int] | None = None,
) -> Product:
    """Apply `changes` in one UPDATE ... RETURNING.

    With `expected_versions` the version check is part of that same statement (compare-and-set),
    so of two writers holding the same ETag exactly one wins.
    """
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
    if expected_versions is not None:
        statement = statement.where(Product.version.in_(expected_versions))
    product: Product = _write_returning(
        session, statement, product_id=product_id, sku=changes.get("sku")
    )
    return product


def delete_product(
    session: Session, product_id: int, *, expected_versions: Collection[int] | None = None
) -> None:
    statement = delete(Product).where(Product.id == product_id).returning(Product.id)
    if expected_versions is not None:
        statement = statement.where(Product.version.in_(expected_versions))
    _write_returning(session, statement, product_id=product_id)
