"""JSON answers built from crud's records, with the headers the contract names.

Routes declare `response_model` for the OpenAPI document and return these: each record is
validated into the schema (a record that does not fit fails here, as FastAPI's own check would)
and serialised once, straight to bytes. A field the record lacks and the schema leaves optional
is not written at all (a product's `category` without `expand=category`).
"""

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from fastapi import Response
from pydantic import BaseModel, TypeAdapter

# The contract's entity tag: the version, quoted (`"3"`); dependencies/conditional.py reads
# it back.
ETAG = '"{}"'


class Versioned(Protocol):
    @property
    def version(self) -> int: ...


def one(
    schema: type[BaseModel],
    record: Versioned,
    *,
    status_code: int = 200,
    location: str | None = None,
) -> Response:
    """One resource, with its `ETag` (and `Location`, where it was created)."""
    body = schema.model_validate(record, from_attributes=True).model_dump_json(exclude_unset=True)
    headers = {"ETag": ETAG.format(record.version)}
    if location is not None:
        headers["Location"] = location
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


def many(
    adapter: TypeAdapter[Any],
    records: Sequence[object],
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A JSON array of resources; `adapter` is `TypeAdapter(list[<schema>])`, made once."""
    body = adapter.dump_json(
        adapter.validate_python(records, from_attributes=True), exclude_unset=True
    )
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


def current(
    schema: type[BaseModel], record: Versioned, not_modified_at: frozenset[int] | None
) -> Response:
    """A read: 304 while `If-None-Match` names the current version (`None`: any, `*`), else
    the resource."""
    if not_modified_at is None or record.version in not_modified_at:
        return Response(status_code=304, headers={"ETag": ETAG.format(record.version)})
    return one(schema, record)
