"""JSON answers built from crud's records, checked against their response schema.

Routes declare `response_model` for the OpenAPI document and return these: each record is
validated into the schema (so a record that does not fit it fails here, as FastAPI's own
check would) and serialised once, straight to bytes, with the headers the contract names.
A field the record does not have and the schema leaves optional is not written at all (a
product's `category` without `expand=category`).
"""

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from fastapi import Request, Response
from pydantic import BaseModel, TypeAdapter

from dependencies.conditional import etag_for, none_match_hits


class Versioned(Protocol):
    @property
    def version(self) -> int: ...


def one(
    schema: type[BaseModel],
    record: Versioned,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """One resource, with its `ETag`."""
    body = schema.model_validate(record, from_attributes=True).model_dump_json(exclude_unset=True)
    return Response(
        body,
        status_code=status_code,
        media_type="application/json",
        headers={"ETag": etag_for(record.version), **(headers or {})},
    )


def created(
    request: Request, schema: type[BaseModel], record: Versioned, read_route: str, **path: int
) -> Response:
    """201: the created resource, its `ETag`, and `Location`, the path `read_route` reads it at."""
    location = request.app.url_path_for(read_route, **path)
    return one(schema, record, status_code=201, headers={"Location": location})


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
    """A read: 304 with the `ETag` while `If-None-Match` names the current version, else it.

    `not_modified_at` is `dependencies.conditional.none_match_versions(If-None-Match)`, which
    the route reads before the record (an over-long list is a 400 with no database work)."""
    if none_match_hits(not_modified_at, record.version):
        return Response(status_code=304, headers={"ETag": etag_for(record.version)})
    return one(schema, record)
