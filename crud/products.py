"""Every query on `products`. Writes commit here, before the route builds its response.

Each write to an existing product is one UPDATE/DELETE ... RETURNING whose WHERE clause carries
every condition (the `If-Match` versions, the stock floor): the database checks and writes in one
atomic step, so concurrent callers cannot interleave between a check and a write.
"""

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from functools import lru_cache
from typing import Any, NoReturn

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Integer,
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
        select(PRODUCTS.c.version, PRODUCTS.c.quantity).where(PRODUCTS.c.id == product_id)
    ).one_or_none()
    if current is None:
        raise ProductNotFound(product_id)
    if delta is not None and (expected_versions is None or current.version in expected_versions):
        raise InsufficientStock(product_id, current.quantity, delta)
    raise StaleVersion(product_id, current.version)


def _write_one(
    session: Session,
    statement: Any,
    parameters: dict[str, Any],
    *,
    product_id: int,
    expected_versions: Collection[int] | None,
    sku: str | None = None,
    delta: int | None = None,
) -> Any:
    """Run one guarded UPDATE/DELETE ... RETURNING on one product and commit it."""
    parameters = {"product_id": product_id, **parameters}
    if expected_versions is not None:
        parameters["versions"] = list(expected_versions)
    with _transaction(session, sku=sku):
        row = session.connection().execute(statement, parameters).one_or_none()
        if row is None:
            session.rollback()
            _explain_no_match(session, product_id, expected_versions=expected_versions, delta=delta)
    return row


# Every statement here is Core, on the `products` table: rows come back as plain rows with the
# attribute names of `Product`, without the ORM's unit of work, identity map or per-row
# instance state (measured: see the README's benchmark notes). `Product` stays the schema.
PRODUCTS = Product.metadata.tables[Product.__tablename__]
# Statements are built once and reused with bound parameters: building a statement and
# computing its cache key on every request cost a fifth of a PATCH (README, Performance).
_BY_ID = PRODUCTS.c.id == bindparam("product_id")
_ROW = select(*PRODUCTS.c)
_ROW_BY_ID = _ROW.where(_BY_ID)
_INSERT = insert(PRODUCTS).returning(*PRODUCTS.c)
# If-Match: `version IN (...)`, one expanding parameter whatever the number of ETags.
_VERSION_GUARD = PRODUCTS.c.version.in_(bindparam("versions", expanding=True))
_NEXT_VERSION = PRODUCTS.c.version + 1


def _guarded(statement: Any, guarded: bool) -> Any:
    return statement.where(_VERSION_GUARD) if guarded else statement


@lru_cache(maxsize=64)  # one per set of changed fields (at most 31), with and without If-Match
def _update_statement(fields: tuple[str, ...], guarded: bool) -> Any:
    # Parameters named `new_<field>`: SQLAlchemy reserves the column names for SET.
    assignments = {
        field: bindparam(f"new_{field}", type_=PRODUCTS.c[field].type) for field in fields
    }
    statement = update(PRODUCTS).where(_BY_ID).values({**assignments, "version": _NEXT_VERSION})
    return _guarded(statement, guarded).returning(*PRODUCTS.c)


# `quantity + delta`, computed as BIGINT so that the check itself cannot overflow the column.
_NEW_QUANTITY = PRODUCTS.c.quantity + cast(bindparam("delta", type_=Integer), BigInteger)
_STOCK = {
    guarded: _guarded(
        update(PRODUCTS)
        .where(_BY_ID, _NEW_QUANTITY.between(0, QUANTITY_MAX))
        .values(quantity=PRODUCTS.c.quantity + bindparam("delta"), version=_NEXT_VERSION),
        guarded,
    ).returning(*PRODUCTS.c)
    for guarded in (False, True)
}
_DELETE = {
    guarded: _guarded(delete(PRODUCTS).where(_BY_ID), guarded).returning(PRODUCTS.c.id)
    for guarded in (False, True)
}


@contextmanager
def _reading(session: Session) -> Iterator[Connection]:
    """The session's connection for a few reads; their transaction ends here, in the route, so
    the session dependency closes the session without a database round trip."""
    yield session.connection()
    session.commit()


def read_product(session: Session, product_id: int) -> Row[Any]:
    """One product as a row; `ProductNotFound` if there is none."""
    with _reading(session) as connection:
        row = connection.execute(_ROW_BY_ID, {"product_id": product_id}).one_or_none()
    if row is None:
        raise ProductNotFound(product_id)
    return row


# The only columns a client can sort by: user text never reaches SQL as text.
SORTABLE: dict[str, Column[Any]] = {
    "id": PRODUCTS.c.id,
    "name": PRODUCTS.c.name,
    "price": PRODUCTS.c.price,
    "quantity": PRODUCTS.c.quantity,
    "created_at": PRODUCTS.c.created_at,
    "updated_at": PRODUCTS.c.updated_at,
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
                PRODUCTS.c.name.ilike(pattern, escape="\\"),
                PRODUCTS.c.description.ilike(pattern, escape="\\"),
            )
        )
    if sku is not None:
        statement = statement.where(PRODUCTS.c.sku == sku)
    if min_price is not None:
        statement = statement.where(PRODUCTS.c.price >= min_price)
    if max_price is not None:
        statement = statement.where(PRODUCTS.c.price <= max_price)
    if in_stock is not None:
        statement = statement.where(
            PRODUCTS.c.quantity > 0 if in_stock else PRODUCTS.c.quantity == 0
        )
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
    count = _filtered(select(func.count()).select_from(PRODUCTS), **filters)
    page = page.order_by(*order).limit(limit)
    with _reading(session) as connection:
        if skip:
            # An offset page: with an extra column PostgreSQL would project every skipped row
            # (measured: a page at offset 900,000 of 1,000,000 took 40% longer), so two queries.
            rows = connection.execute(page.offset(skip)).all()
            return rows, connection.execute(count).scalar_one()
        # First and cursor pages: the count rides along as an uncorrelated scalar subquery,
        # evaluated once: one statement, one round trip, page and total from one snapshot.
        rows = connection.execute(page.add_columns(count.scalar_subquery().label("total"))).all()
        if rows:
            return rows, rows[0].total
        if after is None:
            return rows, 0  # the first page is empty: nothing matches
        return rows, connection.execute(count).scalar_one()  # a cursor past the end


def create_product(session: Session, *, values: Mapping[str, Any]) -> Row[Any]:
    with _transaction(session, sku=values.get("sku")):
        row = session.connection().execute(_INSERT, dict(values)).one()
    return row


def create_products(session: Session, *, rows: Sequence[Mapping[str, Any]]) -> Sequence[Row[Any]]:
    """Insert every row or none: one set-based INSERT ... RETURNING, in one transaction."""
    repeated = _repeated_skus(rows)
    if repeated:
        raise DuplicateSkuInBatch(repeated, reason="appears more than once in this request")
    statement = insert(PRODUCTS).returning(*PRODUCTS.c, sort_by_parameter_order=True)
    # One statement for the whole batch, never split into pages: all or nothing also where
    # each statement commits on its own (the service's PostgreSQL engine).
    single_statement = {"insertmanyvalues_page_size": max(len(rows), 1)}
    try:
        products = session.execute(
            statement, [dict(row) for row in rows], execution_options=single_statement
        ).all()
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        if not _is_sku_violation(exc):
            raise
        # The constraint has decided; this query only names the items it refused.
        skus = {row["sku"] for row in rows if row.get("sku") is not None}
        taken = set(session.scalars(select(PRODUCTS.c.sku).where(PRODUCTS.c.sku.in_(skus))))
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
) -> Row[Any]:
    """Apply `changes` (and version + 1) in one UPDATE ... RETURNING."""
    if not changes:
        current = read_product(session, product_id)
        if expected_versions is not None and current.version not in expected_versions:
            raise StaleVersion(product_id, current.version)
        return current
    fields = tuple(sorted(changes))
    row: Row[Any] = _write_one(
        session,
        _update_statement(fields, expected_versions is not None),
        {f"new_{field}": changes[field] for field in fields},
        product_id=product_id,
        expected_versions=expected_versions,
        sku=changes.get("sku"),
    )
    return row


def change_stock(
    session: Session,
    product_id: int,
    *,
    delta: int,
    expected_versions: Collection[int] | None = None,
) -> Row[Any]:
    """`quantity += delta` in the database, refused (nothing changes) outside 0..QUANTITY_MAX."""
    row: Row[Any] = _write_one(
        session,
        _STOCK[expected_versions is not None],
        {"delta": delta},
        product_id=product_id,
        expected_versions=expected_versions,
        delta=delta,
    )
    return row


def delete_product(
    session: Session, product_id: int, *, expected_versions: Collection[int] | None = None
) -> None:
    _write_one(
        session,
        _DELETE[expected_versions is not None],
        {},
        product_id=product_id,
        expected_versions=expected_versions,
    )
