"""Keyset cursors and RFC 8288 `Link` headers for `GET /products`.

A cursor holds the last row's sort values and id. It is bound to the filters and sort it was
made for, and carries a keyed digest so that an edited cursor, or one from another query, is a
422. The digest guards integrity, not secrecy: a forged cursor could only name another position
in the same listing, because its values are type-checked and sent to the database as parameters.
"""

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn
from urllib.parse import urlencode

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from schemas.listing import ProductQuery

_KEY = b"catalog.products.cursor.v1"
_DIGEST_SIZE = 12


def cursor_binding(query: ProductQuery) -> bytes:
    """What a cursor is valid for: the filters and the sort, in a canonical form."""
    filters = {name: value for name, value in query.filters().items() if value is not None}
    canonical = {"filters": filters, "sort": query.sort}
    return json.dumps(canonical, sort_keys=True, default=_jsonable).encode()


def encode_cursor(values: Sequence[Any], binding: bytes) -> str:
    payload = json.dumps([_jsonable(value) for value in values], separators=(",", ":")).encode()
    digest = hmac.new(_KEY, binding + payload, hashlib.blake2b).digest()[:_DIGEST_SIZE]
    return base64.urlsafe_b64encode(digest + payload).rstrip(b"=").decode()


def decode_cursor(token: str, binding: bytes, fields: Sequence[str]) -> list[Any]:
    """The values of `fields` a cursor holds; 422 if it is not one of ours for this query."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        _invalid("it is not a cursor")
    digest, payload = raw[:_DIGEST_SIZE], raw[_DIGEST_SIZE:]
    expected = hmac.new(_KEY, binding + payload, hashlib.blake2b).digest()[:_DIGEST_SIZE]
    if not hmac.compare_digest(digest, expected):
        _invalid("it was altered, or made for other filters or another sort")
    try:
        values = json.loads(payload)
        if not isinstance(values, list) or len(values) != len(fields):
            raise ValueError
        return [_parse(field, value) for field, value in zip(fields, values, strict=True)]
    except (ValueError, TypeError, InvalidOperation):
        _invalid("its content is malformed")


def page_links(request: Request, query: ProductQuery, *, next_cursor: str | None) -> str | None:
    """`next` (keyset), `prev` (offset pages only) and `first`, keeping every other parameter."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("cursor", "skip")]
    path = request.url.path

    def link(rel: str, *extra: tuple[str, str]) -> str:
        query_string = urlencode([*kept, *extra])
        return f'<{path}{"?" + query_string if query_string else ""}>; rel="{rel}"'

    links = []
    if next_cursor is not None:
        links.append(link("next", ("cursor", next_cursor)))
    if query.skip > 0:
        previous = max(0, query.skip - query.limit)
        links.append(link("prev", *([("skip", str(previous))] if previous else [])))
    if query.skip > 0 or query.cursor is not None:
        links.append(link("first"))
    return ", ".join(links) or None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _parse(field: str, value: Any) -> Any:
    if field in ("id", "quantity"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(field)
        return value
    if not isinstance(value, str):
        raise TypeError(field)
    if field == "price":
        return Decimal(value)
    if field in ("created_at", "updated_at"):
        return datetime.fromisoformat(value)
    return value


def _invalid(reason: str) -> NoReturn:
    raise RequestValidationError(
        [
            {
                "type": "cursor_invalid",
                "loc": ("query", "cursor"),
                "msg": f"Invalid cursor: {reason}",
                "input": None,
            }
        ]
    )
