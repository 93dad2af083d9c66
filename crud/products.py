"""Every query on `products`. Writes commit here, before the route builds its response.

Each write to an existing product is one UPDATE/DELETE ... RETURNING whose WHERE clause carries
every condition (the `If-Match` versions, the stock floor): the database checks and writes in one
atomic step, so concurrent callers cannot interleave between a check and a write.
"""

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, NoReturn

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Row,
    Select,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

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


# The hot reads select plain rows (same attribute names as `Product`) with Core statements on
# the session's connection: no ORM compile step, identity map or instance state per row.
_ROW = select(*Product.__table__.c)
_ROW_BY_ID = _ROW.where(Product.id == bindparam("product_id"))


@contextmanager
def _reading(session: Session) -> Iterator[Connection]:
    """The session's connection for a few reads; their transaction ends here, on the route's
    worker thread, so the session dependency closes the session without a database round trip."""
    yield session.connection()
    session.commit()


def read_product(session: Session, product_id: int) -> Row[Any]:
    """One product as a row; `ProductNotFound` if there is none."""
    with _reading(session) as connection:
        row = connection.execute(_ROW_BY_ID, {"product_id": product_id}).one_or_none()
    if row is None:
        raise ProductNotFound(product_id)
    return row


def get_product(session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise ProductNotFound(product_id)
    return product


# The only columns a client can sort by: user text never reaches SQL as text.
SORTABLE: dict[str, InstrumentedAttribute[Any]] = {
    "id": Product.id,
    "name": Product.name,
    "price": Product.price,
    "quantity": Product.quantity,
    "created_at": Product.created_at,
    "updated_at": Product.updated_at,
}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(
    statement: Select[Any],
    *,
    q: str | None = None,
    sku: str | None = None,
    min_price: Decimal | None = None,
    max_price: Decimal | None = None,
    in_stock: bool | None = None,
) -> Select[Any]:
    if q is not None:
        pattern = f"%{_escape_like(q)}%"
        statement = statement.where(
            or_(
                Product.name.ilike(pattern, escape="\\"),
                Product.description.ilike(pattern, escape="\\"),
            )
        )
    if sku is not None:
        statement = statement.where(Product.sku == sku)
    if min_price is not None:
        statement = statement.where(Product.price >= min_price)
    if max_price is not None:
        statement = statement.where(Product.price <= max_price)
    if in_stock is not None:
        statement = statement.where(Product.quantity > 0 if in_stock else Product.quantity == 0)
    return statement


def sort_columns(sort: Sequence[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """The requested order plus the `id` tie-break (in the direction of the last key)."""
    keys = list(sort)
    if all(field != "id" for field, _ in keys):
        keys.append(("id", keys[-1][1] if keys else False))
    return keys


def _after(keys: Sequence[tuple[str, bool]], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after `values` in the order `keys` (the keyset-paging predicate)."""
    columns = [SORTABLE[field] for field, _ in keys]
    bound = [literal(value, column.type) for column, value in zip(columns, values, strict=True)]
    directions = {descending for _, descending in keys}
    if len(directions) == 1:
        # One direction: a row-value comparison, which a (key, id) B-tree index serves directly.
        left, right = tuple_(*columns), tuple_(*bound)
        return left < right if directions.pop() else left > right
    # Mixed directions: (a > x) OR (a = x AND b < y) OR ...
    clauses = []
    for position, (column, value) in enumerate(zip(columns, bound, strict=True)):
        descending = keys[position][1]
        equal_before = [columns[i] == bound[i] for i in range(position)]
        clauses.append(and_(*equal_before, column < value if descending else column > value))
    return or_(*clauses)


def list_products(
    session: Session,
    *,
    sort: Sequence[tuple[str, bool]] = (),
    after: Sequence[Any] | None = None,
    skip: int = 0,
    limit: int,
    **filters: Any,
) -> tuple[Sequence[Row[Any]], int]:
    """One page in `sort` order (offset paging with `skip`, keyset paging with `after`), and
    the number of all the products that match the filters."""
    keys = sort_columns(sort)
    page = _filtered(_ROW, **filters)
    if after is not None:
        page = page.where(_after(keys, after))
    order = [
        SORTABLE[field].desc() if descending else SORTABLE[field].asc()
        for field, descending in keys
    ]
    count = _filtered(select(func.count()).select_from(Product), **filters)
    with _reading(session) as connection:
        rows = connection.execute(page.order_by(*order).offset(skip).limit(limit)).all()
        total = connection.execute(count).scalar_one()
    return rows, total


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
