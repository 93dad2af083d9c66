"""Keyset cursors and RFC 8288 `Link` headers, for every listing.

A cursor holds the last row's sort values, bound by a keyed digest to the query it was made
for: an edited or foreign cursor is a 422. Integrity against mistakes, not secrecy nor forgery
(the key is in this source): a forged one could only name another position in the same
listing, as its values are checked and bound as parameters.
"""

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn
from urllib.parse import urlencode

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter

from api import responses
from crud.shared import Paging, SortKey
from models.product import INT4_MAX
from schemas.listing import ListQuery

_KEY = b"catalog.cursor.v1"
_DIGEST_SIZE = 12


def page_response(
    request: Request,
    query: ListQuery,
    *,
    sort_keys: Callable[[Sequence[tuple[str, bool]]], Sequence[SortKey]],
    fetch: Callable[[Paging], tuple[Sequence[Any], int]],
    adapter: TypeAdapter[Any],
) -> Response:
    """A listing's answer: the page `fetch` reads (with `X-Total-Count`, the number of all the
    rows that match), and `Link`s to the next, previous and first pages."""
    keys = sort_keys(query.sort_order)
    binding = cursor_binding(request, query)
    after = decode_cursor(query.cursor, binding, keys) if query.cursor else None
    # One row more than the page tells whether there is a next page.
    rows, total = fetch(Paging(keys, after=after, skip=query.skip, limit=query.limit + 1))
    headers = {"X-Total-Count": str(total)}
    following = None
    if len(rows) > query.limit:
        last = rows[query.limit - 1]
        following = encode_cursor([getattr(last, key.field) for key in keys], binding)
    if link := page_links(request, query, next_cursor=following):
        headers["Link"] = link
    return responses.many(adapter, rows[: query.limit], headers=headers)


def cursor_binding(request: Request, query: ListQuery) -> bytes:
    """What a cursor is valid for: the listing's path, filters and sort, canonically."""
    filters = {name: value for name, value in query.filters().items() if value is not None}
    canonical = {"path": request.url.path, "filters": filters, "sort": query.sort}
    return json.dumps(canonical, sort_keys=True, default=_jsonable).encode()


def _digest(binding: bytes, payload: bytes) -> bytes:
    return hmac.new(_KEY, binding + payload, hashlib.blake2b).digest()[:_DIGEST_SIZE]


def encode_cursor(values: Sequence[Any], binding: bytes) -> str:
    payload = json.dumps(values, separators=(",", ":"), default=_jsonable).encode()
    return base64.urlsafe_b64encode(_digest(binding, payload) + payload).rstrip(b"=").decode()


def decode_cursor(token: str, binding: bytes, keys: Sequence[SortKey]) -> list[Any]:
    """The sort values a cursor holds; 422 if it is not one of ours for this query."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        _invalid("it is not a cursor")
    digest, payload = raw[:_DIGEST_SIZE], raw[_DIGEST_SIZE:]
    if not hmac.compare_digest(digest, _digest(binding, payload)):
        _invalid("it was altered, or made for other filters or another sort")
    try:
        values = json.loads(payload)
        if not isinstance(values, list) or len(values) != len(keys):
            raise ValueError
        return [_parse(key, value) for key, value in zip(keys, values, strict=True)]
    except (ValueError, TypeError, InvalidOperation):
        _invalid("its content is malformed")


def page_links(request: Request, query: ListQuery, *, next_cursor: str | None) -> str | None:
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


def _jsonable(value: Decimal | datetime) -> str:
    """`json.dumps`' `default`: the values JSON has no type for, as text."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


# A cursor's text values back as their column's type.
_FROM_TEXT: dict[type, Callable[[Any], Any]] = {Decimal: Decimal, datetime: datetime.fromisoformat}


def _parse(key: SortKey, value: Any) -> Any:
    """A cursor's value back as the sort column's Python type, or TypeError/ValueError.

    Only a value a row can hold: the cursor's key is in this public source, so a client can
    sign any values, and one no column can hold (an integer past 4 bytes, a NUL, a lone
    surrogate) would fail in the driver rather than compare.
    """
    python_type = key.column.type.python_type
    expected = int if python_type is int else str
    if type(value) is not expected:  # not isinstance: JSON's `true` is no int here
        raise TypeError(key.field)
    if isinstance(value, int) and not -INT4_MAX - 1 <= value <= INT4_MAX:
        raise ValueError(key.field)
    if isinstance(value, str) and b"\x00" in value.encode():  # UnicodeEncodeError is a ValueError
        raise ValueError(key.field)
    return _FROM_TEXT[python_type](value) if python_type in _FROM_TEXT else value


def _invalid(reason: str) -> NoReturn:
    error = {"type": "cursor_invalid", "loc": ("query", "cursor"), "input": None}
    raise RequestValidationError([{**error, "msg": f"Invalid cursor: {reason}"}])
