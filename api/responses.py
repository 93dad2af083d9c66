"""JSON answers built from crud's records, checked against their response schema.

Routes declare `response_model` for the OpenAPI document and return these: each record is
validated into the schema (so a record that does not fit it fails here, as FastAPI's own
check would) and serialised once, straight to bytes, with the headers the contract names.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from fastapi import Response
from pydantic import BaseModel, TypeAdapter

from dependencies.conditional import etag_for


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
    body = schema.model_validate(record, from_attributes=True).model_dump_json()
    return Response(
        body,
        status_code=status_code,
        media_type="application/json",
        headers={"ETag": etag_for(record.version), **(headers or {})},
    )


def many(
    adapter: TypeAdapter[Any],
    records: Sequence[object],
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A JSON array of resources; `adapter` is `TypeAdapter(list[<schema>])`, made once."""
    body = adapter.dump_json(adapter.validate_python(records, from_attributes=True))
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)
