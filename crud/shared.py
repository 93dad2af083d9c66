"""What the crud of products and categories shares: constraint names mapped to domain errors,
the If-Match compare-and-set, and sorted, paged listings. Nothing here commits."""

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from crud.errors import CatalogError, NotFound, StaleVersion
from models.base import Base

# A resource's constraints by name, each making the domain error that its violation by a write
# of these values means.
Conflicts = Mapping[str, Callable[[Mapping[str, Any]], CatalogError]]


def violated_constraint(exc: IntegrityError, model: type[Base]) -> str | None:
    """The name of the constraint that refused a write on `model`'s table.

    PostgreSQL names it. SQLite names the columns ("UNIQUE constraint failed: products.sku") or
    the unique index ("... failed: index 'uq_...'"), and no foreign key at all: it is then the
    one foreign key between the table and another (its own, or one naming it), if only one.
    """
    table = model.metadata.tables[model.__tablename__]
    named = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
    if named:
        return str(named)
    message = str(exc.orig)
    if message == "FOREIGN KEY constraint failed":
        keys = [
            key
            for other in table.metadata.tables.values()
            for key in other.foreign_key_constraints
            if other is table or key.referred_table is table
        ]
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


@dataclass(frozen=True)
class SortKey:
    field: str
    column: InstrumentedAttribute[Any]
    descending: bool


@dataclass(frozen=True)
class Resource:
    """What a resource brings: its model, its error for a missing row, the fields a listing
    may sort by (user text never reaches SQL as text: it only picks a column), and what its
    constraints' violations mean."""

    model: type[Base]
    not_found: type[NotFound]
    sortable: Collection[str]
    conflicts: Conflicts

    def sort_keys(self, requested: Sequence[tuple[str, bool]]) -> list[SortKey]:
        """`requested` (field, descending) pairs as sort keys, plus the `id` tie-break (in the
        direction of the last key)."""
        columns = {field: getattr(self.model, field) for field in self.sortable}
        keys = [SortKey(field, columns[field], descending) for field, descending in requested]
        if all(key.field != "id" for key in keys):
            keys.append(SortKey("id", columns["id"], keys[-1].descending if keys else False))
        return keys

    def as_domain_error(self, exc: IntegrityError, values: Mapping[str, Any]) -> Exception:
        error = self.conflicts.get(violated_constraint(exc, self.model) or "")
        return error(values) if error is not None else exc


def _explain_no_match(session: Session, resource: Resource, row_id: int) -> NoReturn:
    """A guarded write matched no row: either there is none, or If-Match named old versions."""
    model: Any = resource.model
    current = session.scalar(select(model.version).where(model.id == row_id))
    if current is None:
        raise resource.not_found(row_id)
    raise StaleVersion(resource.not_found.resource, row_id, current)


def _guarded(statement: Any, model: Any, row_id: int, versions: Collection[int] | None) -> Any:
    statement = statement.where(model.id == row_id)
    return statement if versions is None else statement.where(model.version.in_(versions))


def update_one(
    session: Session,
    resource: Resource,
    row_id: int,
    *,
    changes: Mapping[str, Any],
    expected_versions: Collection[int] | None,
    where: Sequence[ColumnElement[bool]] = (),
    explain: Callable[[], NoReturn] | None = None,
) -> Any:
    """Apply `changes` and version + 1 in one `UPDATE ... WHERE ... RETURNING`: the database
    checks (the If-Match versions, any rule in `where`) and writes in one step, so concurrent
    writers cannot slip in between. When it matches nothing, `explain` (by default: no such
    row, or a stale version) raises why. No change is no write, but still a 404 or a 412."""
    model: Any = resource.model
    if not changes:
        current = session.get(model, row_id)
        # Judged on the row just read: a second read could see a later version than the one
        # compared, and say so in the 412.
        if current is None:
            raise resource.not_found(row_id)
        if expected_versions is not None and current.version not in expected_versions:
            raise StaleVersion(resource.not_found.resource, row_id, current.version)
        return current
    statement = (
        _guarded(update(model), model, row_id, expected_versions)
        .where(*where)
        .values(**changes, version=model.version + 1)
        .returning(model)
        .execution_options(populate_existing=True)
    )
    try:
        row = session.scalars(statement).one_or_none()
    except IntegrityError as exc:
        raise resource.as_domain_error(exc, changes) from exc
    if row is None:
        (explain or (lambda: _explain_no_match(session, resource, row_id)))()
    return row


def delete_one(
    session: Session,
    resource: Resource,
    row_id: int,
    *,
    expected_versions: Collection[int] | None,
    in_use: Callable[[], CatalogError] | None = None,
) -> None:
    """One guarded `DELETE ... RETURNING id`. A foreign key that refuses it (another row still
    names this one) is `in_use()`, asked in a savepoint so the transaction can still ask why."""
    model: Any = resource.model
    statement = _guarded(delete(model), model, row_id, expected_versions).returning(model.id)
    if in_use is None:
        deleted = session.scalar(statement)
    else:
        try:
            with session.begin_nested():
                deleted = session.scalar(statement)
        except IntegrityError as exc:
            raise in_use() from exc
    if deleted is None:
        _explain_no_match(session, resource, row_id)


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
    rows: Select[Any],
    *,
    of: type[Base],
    where: Sequence[ColumnElement[bool]],
    paging: Paging,
) -> tuple[list[Any], int]:
    keys, after = paging.keys, paging.after
    page = rows.where(*where)
    if after is not None:
        page = page.where(_after(keys, after))
    page = page.order_by(*(key.column.desc() if key.descending else key.column for key in keys))
    page = page.limit(paging.limit)
    count = select(func.count()).select_from(of).where(*where)
    if paging.skip:
        # An offset page: with an extra column PostgreSQL would project every skipped row
        # (bench/README.md, "Listing"), so the count is a query of its own.
        return list(session.scalars(page.offset(paging.skip))), session.execute(count).scalar_one()
    # First and cursor pages: the count rides along as an uncorrelated scalar subquery,
    # evaluated once: one statement, one round trip, page and total from one snapshot.
    found = session.execute(page.add_columns(count.scalar_subquery().label("total"))).all()
    if found:
        return [row[0] for row in found], found[0].total
    if after is None:
        return [], 0  # the first page is empty: nothing matches
    return [], session.execute(count).scalar_one()  # a cursor past the end
