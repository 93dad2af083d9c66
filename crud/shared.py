"""What the crud of every resource is made of: one transaction per write, constraints mapped
to domain errors, single-row reads and guarded writes, and filtered, sorted, paged listings.

A resource brings only data (a `Resource`: its table, its error for a missing row, its
sortable columns) and its filters; its module names what its rows are and what its
constraints mean.
"""

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from sqlalchemy import (
    ColumnElement,
    Executable,
    ForeignKeyConstraint,
    Row,
    Select,
    Table,
    Update,
    and_,
    bindparam,
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
from sqlalchemy.sql.elements import KeyedColumnElement

from crud.errors import CatalogError, NotFound, StaleVersion

R = TypeVar("R")

# A resource's constraints by name, each with the domain error its violation means.
Conflicts = Mapping[str, Callable[[], CatalogError]]

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
    """The name of the constraint that refused a write on `table`, as `models.base` names them.

    PostgreSQL names it in the error's diagnostics. SQLite says which columns ("UNIQUE
    constraint failed: products.sku") or which unique index ("... failed: index 'uq_...'"),
    and of a foreign key only "FOREIGN KEY constraint failed": it is then the one foreign key
    between `table` and another table (its own, or one naming it), when there is exactly one.
    """
    named = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
    if named:
        return str(named)
    message = str(exc.orig)
    if message == "FOREIGN KEY constraint failed":
        keys = _foreign_keys_touching(table)
        return str(keys[0].name) if len(keys) == 1 else None
    for index in table.indexes:
        if index.unique and message.endswith(f"constraint failed: index '{index.name}'"):
            return str(index.name)
    for constraint in table.constraints:
        columns = getattr(constraint, "columns", ())
        failed = ", ".join(f"{table.name}.{column.name}" for column in columns)
        if columns and message.endswith(f"constraint failed: {failed}"):
            return str(constraint.name)
    return None


def _foreign_keys_touching(table: Table) -> list[ForeignKeyConstraint]:
    """`table`'s own foreign keys, and those of other tables that name it."""
    tables = table.metadata.tables.values() if table.metadata is not None else [table]
    return [
        key
        for other in tables
        for key in other.foreign_key_constraints
        if other is table or key.referred_table is table
    ]


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
    conflicts: Conflicts | None = None,
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


class Resource:
    """A table as crud reads and writes its rows one at a time: the statements, built once
    with bound parameters and reused, the columns a listing may sort by, and the error for
    a row that does not exist."""

    def __init__(self, table: Table, *, not_found: type[NotFound], sortable: Sequence[str]) -> None:
        self.table = table
        self.not_found = not_found
        # The only columns a client can sort by: user text never reaches SQL as text.
        self.sortable = {field: table.c[field] for field in sortable}
        self.by_id = by_id(table)
        self._version_guard = version_guard(table)
        self.next_version = table.c.version + 1
        self.read = select(*table.c).where(self.by_id)
        self.insert = insert(table).returning(*table.c)
        self.delete = {
            guarded: self.guarded(delete(table).where(self.by_id), guarded).returning(table.c.id)
            for guarded in (False, True)
        }
        self._updates: dict[tuple[tuple[str, ...], bool], Update] = {}

    def guarded(self, statement: Any, guarded: bool) -> Any:
        """`statement`, with the If-Match guard when `guarded`."""
        return statement.where(self._version_guard) if guarded else statement

    def update(self, fields: tuple[str, ...], guarded: bool) -> Update:
        """`UPDATE ... SET <fields>, version = version + 1 WHERE id = :row_id [AND If-Match]
        RETURNING *`, one per set of fields (a handful: a subset of the table's columns)."""
        statement = self._updates.get((fields, guarded))
        if statement is None:
            # Parameters named `new_<field>`: SQLAlchemy reserves the column names for SET.
            assignments = {
                field: bindparam(f"new_{field}", type_=self.table.c[field].type) for field in fields
            }
            values = {**assignments, "version": self.next_version}
            statement = self.guarded(update(self.table).where(self.by_id).values(values), guarded)
            statement = self._updates[(fields, guarded)] = statement.returning(*self.table.c)
        return statement


def explain_no_match(session: Session, resource: Resource, row_id: int) -> NoReturn:
    """A guarded write matched no row: either there is none, or If-Match named old versions."""
    table = resource.table
    current = session.execute(
        select(table.c.version).where(table.c.id == row_id)
    ).scalar_one_or_none()
    if current is None:
        raise resource.not_found(row_id)
    raise StaleVersion(resource.not_found.resource, row_id, current)


def write_one(
    session: Session,
    table: Table,
    statement: Executable,
    parameters: Mapping[str, Any],
    *,
    row_id: int,
    expected_versions: Collection[int] | None,
    explain: Callable[[], NoReturn],
    conflicts: Conflicts | None = None,
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


def read_row(session: Session, resource: Resource, row_id: int) -> Row[Any]:
    """One row; `resource.not_found` if there is none."""
    with reading(session):
        row = session.execute(resource.read, {ROW_ID: row_id}).one_or_none()
    if row is None:
        raise resource.not_found(row_id)
    return row


def insert_row(
    session: Session,
    resource: Resource,
    values: Mapping[str, Any],
    *,
    conflicts: Conflicts | None = None,
) -> Row[Any]:
    """`INSERT ... RETURNING *`, committed; a violated constraint becomes its `conflicts` error."""
    with transaction(session, resource.table, conflicts=conflicts):
        return session.execute(resource.insert, dict(values)).one()


def update_row(
    session: Session,
    resource: Resource,
    row_id: int,
    *,
    changes: Mapping[str, Any],
    expected_versions: Collection[int] | None,
    conflicts: Conflicts | None = None,
) -> Row[Any]:
    """Apply `changes` (and version + 1) in one guarded `UPDATE ... RETURNING *`; no change
    is no write, but still a 404 or a 412 when the row or its version say so."""
    if not changes:
        current = read_row(session, resource, row_id)
        if expected_versions is not None and current.version not in expected_versions:
            raise StaleVersion(resource.not_found.resource, row_id, current.version)
        return current
    fields = tuple(sorted(changes))
    return write_one(
        session,
        resource.table,
        resource.update(fields, expected_versions is not None),
        {f"new_{field}": changes[field] for field in fields},
        row_id=row_id,
        expected_versions=expected_versions,
        explain=lambda: explain_no_match(session, resource, row_id),
        conflicts=conflicts,
    )


def delete_row(
    session: Session,
    resource: Resource,
    row_id: int,
    *,
    expected_versions: Collection[int] | None,
    conflicts: Conflicts | None = None,
) -> None:
    """One guarded `DELETE ... RETURNING id`, committed."""
    write_one(
        session,
        resource.table,
        resource.delete[expected_versions is not None],
        {},
        row_id=row_id,
        expected_versions=expected_versions,
        explain=lambda: explain_no_match(session, resource, row_id),
        conflicts=conflicts,
    )


# Listings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    column: KeyedColumnElement[Any]
    descending: bool

    @property
    def field(self) -> str:
        return str(self.column.key)


def sort_keys(resource: Resource, requested: Sequence[tuple[str, bool]]) -> list[SortKey]:
    """`requested` (field, descending) pairs as the columns to sort by, plus the `id`
    tie-break (in the direction of the last key)."""
    sortable = resource.sortable
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


@dataclass(frozen=True)
class Paging:
    """Which page: in `keys` order, after the row whose sort values are `after` (a cursor), or
    `skip` rows in, at most `limit` rows."""

    keys: Sequence[SortKey]
    after: Sequence[Any] | None = None
    skip: int = 0
    limit: int = 100


def list_page(
    session: Session,
    table: Table,
    *,
    where: Sequence[ColumnElement[bool]],
    paging: Paging,
    record: Callable[[Sequence[Any]], R],
    rows: Select[Any] | None = None,
) -> tuple[list[R], int]:
    """One page of `table`'s rows, each made a `record`, and how many rows match `where` in all.

    `rows` is what a row of the page is: `table`'s columns unless the resource selects more
    (an ORM entity with what it eagerly loads); `record` gets each row's selected items.
    """
    keys, after, skip, limit = paging.keys, paging.after, paging.skip, paging.limit
    page = (select(*table.c) if rows is None else rows).where(*where)
    if after is not None:
        page = page.where(_after(keys, after))
    page = page.order_by(*(key.column.desc() if key.descending else key.column for key in keys))
    page = page.limit(limit)
    count = select(func.count()).select_from(table).where(*where)
    with reading(session):
        if skip:
            # An offset page: with an extra column PostgreSQL would project every skipped row
            # (bench/README.md, "Listing"), so the count is a query of its own.
            found = session.execute(page.offset(skip)).all()
            return [record(row) for row in found], session.execute(count).scalar_one()
        # First and cursor pages: the count rides along as an uncorrelated scalar subquery,
        # evaluated once: one statement, one round trip, page and total from one snapshot.
        found = session.execute(page.add_columns(count.scalar_subquery().label("total"))).all()
        if found:
            return [record(row[:-1]) for row in found], found[0].total
        if after is None:
            return [], 0  # the first page is empty: nothing matches
        return [], session.execute(count).scalar_one()  # a cursor past the end
