"""What the crud of every resource is made of: one transaction per write, constraints mapped
to domain errors, guarded single-row writes, and filtered, sorted, paged listings.

A resource brings only data: its table, its errors, its sortable columns and its filters.
"""

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from sqlalchemy import (
    ColumnElement,
    Executable,
    Row,
    Table,
    and_,
    bindparam,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import KeyedColumnElement

from crud.errors import CatalogError, NotFound, StaleVersion

R = TypeVar("R")

# The conventional parameters of a guarded write: which row, and (If-Match) which versions.
ROW_ID = "row_id"
VERSIONS = "versions"


def by_id(table: Table) -> ColumnElement[bool]:
    """`id = :row_id`, the predicate every read and write of one row is built on."""
    return table.c.id == bindparam(ROW_ID)


def version_guard(table: Table) -> ColumnElement[bool]:
    """If-Match: `version IN (...)`, one expanding parameter whatever the number of ETags."""
    return table.c.version.in_(bindparam(VERSIONS, expanding=True))


def violated_constraint(exc: IntegrityError, table: Table) -> str | None:
    """The name of the constraint that refused a write, as `models.base` names them.

    PostgreSQL names it in the error's diagnostics; SQLite only says which columns
    ("UNIQUE constraint failed: products.sku"), which `table`'s unique constraints translate.
    """
    named = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
    if named:
        return str(named)
    message = str(exc.orig)
    for constraint in table.constraints:
        columns = getattr(constraint, "columns", ())
        failed = ", ".join(f"{table.name}.{column.name}" for column in columns)
        if columns and message.endswith(f"constraint failed: {failed}"):
            return str(constraint.name)
    return None


# Set while a request keeps its answer with its write (`crud.idempotency`): the crud functions
# it calls leave their commit to it, and it commits the write and the answer together.
_COMMIT_DEFERRED = "catalog.commit_deferred"


def commit(session: Session) -> None:
    """End the session's transaction with a commit, unless its owner will (`commit_deferred`)."""
    if not session.info.get(_COMMIT_DEFERRED):
        session.commit()


@contextmanager
def commit_deferred(session: Session) -> Iterator[None]:
    """Within the block, `transaction()` and `reading()` do not commit: whoever opened it does,
    once, for everything the block wrote. Rollbacks are not deferred: an error still undoes it."""
    session.info[_COMMIT_DEFERRED] = True
    try:
        yield
    finally:
        del session.info[_COMMIT_DEFERRED]


@contextmanager
def transaction(
    session: Session,
    table: Table,
    *,
    conflicts: Mapping[str, Callable[[], CatalogError]] | None = None,
) -> Iterator[None]:
    """Commit what the block wrote, or roll all of it back.

    The session's transaction began with the block's first statement (the write engine runs
    every session in one), so the block is atomic however many statements it makes. A
    violated constraint named in `conflicts` becomes that domain error.
    """
    try:
        yield
        commit(session)
    except IntegrityError as exc:
        session.rollback()
        error = (conflicts or {}).get(violated_constraint(exc, table) or "")
        if error is not None:
            raise error() from exc
        raise
    except Exception:
        session.rollback()
        raise


def explain_no_match(
    session: Session,
    table: Table,
    row_id: int,
    *,
    not_found: type[NotFound],
) -> NoReturn:
    """A guarded write matched no row: either there is none, or If-Match named old versions."""
    current = session.execute(
        select(table.c.version).where(table.c.id == row_id)
    ).scalar_one_or_none()
    if current is None:
        raise not_found(row_id)
    raise StaleVersion(not_found.resource, row_id, current)


def write_one(
    session: Session,
    table: Table,
    statement: Executable,
    parameters: Mapping[str, Any],
    *,
    row_id: int,
    expected_versions: Collection[int] | None,
    explain: Callable[[], NoReturn],
    conflicts: Mapping[str, Callable[[], CatalogError]] | None = None,
) -> Row[Any]:
    """Run one guarded UPDATE/DELETE ... RETURNING on one row and commit it.

    Its WHERE clause carries every condition (the If-Match versions, the resource's own
    rules): the database checks and writes in one step, so concurrent callers cannot slip
    between a check and a write. When it matched nothing, `explain` raises the reason.
    """
    values = {ROW_ID: row_id, **parameters}
    if expected_versions is not None:
        values[VERSIONS] = list(expected_versions)
    with transaction(session, table, conflicts=conflicts):
        row = session.execute(statement, values).one_or_none()
        if row is None:
            session.rollback()
            explain()
    return row


@contextmanager
def reading(session: Session) -> Iterator[Session]:
    """A few reads; their transaction (if the bind has one) ends here, in the route, so the
    session dependency closes the session without another round trip."""
    yield session
    commit(session)


# Listings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    column: KeyedColumnElement[Any]
    descending: bool

    @property
    def field(self) -> str:
        return str(self.column.key)


def sort_keys(
    sortable: Mapping[str, KeyedColumnElement[Any]], requested: Sequence[tuple[str, bool]]
) -> list[SortKey]:
    """The requested order plus the `id` tie-break (in the direction of the last key)."""
    keys = [SortKey(sortable[field], descending) for field, descending in requested]
    if all(key.field != "id" for key in keys):
        keys.append(SortKey(sortable["id"], keys[-1].descending if keys else False))
    return keys


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _after(keys: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after `values` in the order `keys` (the keyset-paging predicate)."""
    columns = [key.column for key in keys]
    bound = [literal(value, column.type) for column, value in zip(columns, values, strict=True)]
    directions = {key.descending for key in keys}
    if len(directions) == 1:
        # One direction: a row-value comparison, which a (key, id) B-tree index serves directly.
        left, right = tuple_(*columns), tuple_(*bound)
        return left < right if directions.pop() else left > right
    # Mixed directions: (a > x) OR (a = x AND b < y) OR ...
    clauses = []
    for position, (key, value) in enumerate(zip(keys, bound, strict=True)):
        equal_before = [columns[i] == bound[i] for i in range(position)]
        clauses.append(
            and_(*equal_before, key.column < value if key.descending else key.column > value)
        )
    return or_(*clauses)


def list_page(
    session: Session,
    table: Table,
    *,
    where: Sequence[ColumnElement[bool]],
    keys: Sequence[SortKey],
    after: Sequence[Any] | None,
    skip: int,
    limit: int,
    record: Callable[[Sequence[Any]], R],
) -> tuple[list[R], int]:
    """One page of `table`'s rows in `keys` order (offset paging with `skip`, keyset paging
    with `after`), each made a `record`, and how many rows match `where` in all."""
    width = len(table.c)
    page = select(*table.c).where(*where)
    if after is not None:
        page = page.where(_after(keys, after))
    page = page.order_by(*(key.column.desc() if key.descending else key.column for key in keys))
    page = page.limit(limit)
    count = select(func.count()).select_from(table).where(*where)
    with reading(session):
        if skip:
            # An offset page: with an extra column PostgreSQL would project every skipped row
            # (bench/README.md, "Listing"), so the count is a query of its own.
            rows = session.execute(page.offset(skip)).all()
            return [record(row) for row in rows], session.execute(count).scalar_one()
        # First and cursor pages: the count rides along as an uncorrelated scalar subquery,
        # evaluated once: one statement, one round trip, page and total from one snapshot.
        rows = session.execute(page.add_columns(count.scalar_subquery().label("total"))).all()
        if rows:
            return [record(row[:width]) for row in rows], rows[0].total
        if after is None:
            return [], 0  # the first page is empty: nothing matches
        return [], session.execute(count).scalar_one()  # a cursor past the end
