"""Yardstick: the service's four benchmarked routes by hand, with the same work and guarantees.

What bench/throughput.py measures the service against: FastAPI and psycopg2 alone, written as a
competent developer would, doing per request what the service does. Run from this directory:
DATABASE_URL=postgresql://... uvicorn psycopg2_app:app

- Plain `def` routes: FastAPI runs each request on a worker thread, where psycopg2 may block.
- A thread-safe pool of POOL_SIZE connections (default 10, as the service's), all opened at
  start (minconn = maxconn: psycopg2 closes any connection returned beyond minconn); a request
  waits for a free one instead of failing. Sessions in UTC, as the service's (`-c timezone=UTC`).
- Reads in autocommit: a single-statement read is one round trip. GET one: one SELECT. The
  list's first page: one SELECT of limit + 1 rows (is there a next page?) with the total as a
  scalar subquery, as crud.products.list_products does it; with `skip`, page and count are two
  statements, as there. Tuple rows (a plain cursor) become the contract's ten fields: price a
  JSON number, timestamps RFC 3339 UTC with "Z" (what the service writes). `expand=category`
  on the list: the same SELECT with a LEFT JOIN of `categories`, each product with
  `"category": {"id", "name"}` or null.
- Writes in a transaction: BEGIN, the statement, COMMIT (three round trips), as the service
  does for every write. Bodies go through pydantic models with the contract's rules (unknown
  fields 422, read-only fields ignored). POST: one INSERT ... RETURNING, created_at and
  updated_at both the column default now() (the transaction's time: equal), 409 on a duplicate
  sku. PATCH: only the fields sent, version + 1, updated_at = now(), `If-Match` (one ETag or
  `*`; stale: 412, nothing changes) in the UPDATE's WHERE, 404 when missing.
- `Idempotency-Key` on POST (1 to 255 visible ASCII characters, else 400), with the service's
  guarantees and statements (crud/idempotency.py): in the write's transaction, the key's
  advisory lock (under `SET LOCAL lock_timeout = 1`) and the claim (a plain INSERT) in the same
  message as the product's INSERT, then the answer kept (`UPDATE`), COMMIT: four round trips.
  A key already committed (unique violation): its answer replayed (`Idempotent-Replayed:
  true`), 422 for another request; its lock held by a request in flight (lock_not_available:
  nothing else here has a lock timeout): 409. A 409 on the sku is
  kept in a transaction of its own. One key space (no API keys), kept 24 hours; an expired key
  is answered 409 here (the service deletes it and starts again; no benchmark meets one).
- ETag "<version>" on every single product, `If-None-Match` -> 304 on GET one, Location on 201,
  X-Total-Count and `Link: rel="next"` on the list.

Left out, so the ratios include what they cost the service: request ids, access log, metrics,
API keys, the purge of expired idempotency keys, keyset cursors (the next link here is an
offset), list filters and sorting, problem+json for FastAPI's own errors, 503 for database
errors, the other routes.
"""

import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response
from psycopg2.errors import LockNotAvailable, UniqueViolation
from psycopg2.extensions import cursor as Cursor
from psycopg2.pool import ThreadedConnectionPool
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

DSN = os.environ["DATABASE_URL"].replace("postgresql+psycopg2://", "postgresql://")
POOL_SIZE = int(os.environ.get("POOL_SIZE", "10"))
POOL = ThreadedConnectionPool(POOL_SIZE, POOL_SIZE, DSN, options="-c timezone=UTC")
SLOTS = threading.BoundedSemaphore(POOL_SIZE)  # wait for a connection instead of failing
COLUMNS = (
    "id, sku, name, description, price, quantity, created_at, updated_at, version, category_id"
)
FIELDS = COLUMNS.split(", ")
WIDTH = len(FIELDS)
# The list with expand=category: each row's category's id and name after the product's columns.
EXPANDED = (
    ", ".join(f"p.{column}" for column in FIELDS)
    + ", c.id, c.name FROM products p LEFT JOIN categories c ON c.id = p.category_id"
)
BY_ID = f"SELECT {COLUMNS} FROM products WHERE id = %s"
INSERT = (  # created_at and updated_at: both the default now(), the transaction's time
    "INSERT INTO products (sku, name, description, price, quantity) VALUES "
    f"(%(sku)s, %(name)s, %(description)s, %(price)s, %(quantity)s) RETURNING {COLUMNS}"
)
# Idempotency keys, as crud/idempotency.py sends them (psycopg2 renders the same SQL). The claim
# goes in front of the write, in one message: it must not wait for a transaction in flight.
CLAIM = (
    "SET LOCAL lock_timeout = 1; SELECT pg_advisory_xact_lock(%(lock_id)s); "
    "SET LOCAL lock_timeout = DEFAULT; "
    "INSERT INTO idempotency_keys (caller, key, fingerprint, created_at, expires_at) "
    "VALUES (%(caller)s, %(key)s, %(fingerprint)s, %(now)s, %(expires_at)s); "
)
KEPT = (
    "SELECT fingerprint, status, location, etag, body FROM idempotency_keys "
    "WHERE caller = %(caller)s AND key = %(key)s AND expires_at > %(now)s"
)
KEEP = (
    "UPDATE idempotency_keys SET status = %(status)s, location = %(location)s, etag = %(etag)s, "
    "body = %(body)s WHERE caller = %(caller)s AND key = %(key)s"
)
KEYS_PRIMARY_KEY = "pk_idempotency_keys"
KEY = re.compile(r"^[!-~]{1,255}$")
TTL = timedelta(hours=24)
INT4_MAX = 2_147_483_647
app = FastAPI()

Sku = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9._-]{1,64}$")]
NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]+$"
Name = Annotated[
    str, StringConstraints(strict=True, strip_whitespace=True, max_length=100, pattern=NO_CONTROL)
]
Description = Annotated[str, StringConstraints(strict=True, max_length=500, pattern=r"^[^\x00]*$")]
Price = Annotated[Decimal, Field(gt=0, max_digits=10, decimal_places=2, allow_inf_nan=False)]
Quantity = Annotated[int, Field(strict=True, ge=0, le=INT4_MAX)]
ProductId = Annotated[int, Path(ge=1, le=INT4_MAX)]


class _Body(BaseModel):
    # Unknown fields are a 422; the read-only ones are accepted and ignored (never dumped).
    model_config = ConfigDict(extra="forbid")
    id: Any = Field(None, exclude=True)
    version: Any = Field(None, exclude=True)
    created_at: Any = Field(None, exclude=True)
    updated_at: Any = Field(None, exclude=True)


class ProductCreate(_Body):
    sku: Sku | None = None
    name: Name
    description: Description | None = None
    price: Price
    quantity: Quantity = 0


class ProductUpdate(_Body):  # no `| None` on required columns: an explicit null is a 422
    sku: Sku | None = None
    name: Name = None  # type: ignore[assignment]
    description: Description | None = None
    price: Price = None  # type: ignore[assignment]
    quantity: Quantity = None  # type: ignore[assignment]


@contextmanager
def cursor(*, transaction: bool = False) -> Iterator[Cursor]:
    """A pooled connection's cursor, in autocommit or (`transaction`) in BEGIN ... COMMIT."""
    with SLOTS:
        connection = POOL.getconn()
        try:
            connection.autocommit = True  # a client-side flag: no round trip
            if transaction:  # since psycopg2 2.9 `with connection` begins even in autocommit
                with connection, connection.cursor() as cur:
                    yield cur
            else:
                with connection.cursor() as cur:
                    yield cur
        finally:
            POOL.putconn(connection)  # rolls back anything left open


def _timestamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")  # UTC sessions: every offset is +00:00


def _product(row: tuple[Any, ...]) -> dict[str, Any]:
    product = dict(zip(FIELDS, row, strict=False))  # the columns (a list row has a total too)
    product["price"] = float(product["price"])  # NUMERIC(10,2): its float's repr is its text
    product["created_at"] = _timestamp(product["created_at"])
    product["updated_at"] = _timestamp(product["updated_at"])
    return product


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status, headers, media_type="application/json")


def _one(row: tuple[Any, ...], status: int = 200, **headers: str) -> Response:
    return _json(_product(row), status, {"ETag": f'"{row[8]}"', **headers})


def _problem(status: int, title: str) -> Response:
    body = json.dumps({"type": "about:blank", "title": title, "status": status})
    return Response(body, status, media_type="application/problem+json")


@app.get("/products/{product_id}")
def read_product(
    product_id: ProductId, if_none_match: Annotated[str | None, Header()] = None
) -> Response:
    with cursor() as cur:
        cur.execute(BY_ID, (product_id,))
        row = cur.fetchone()
    if row is None:
        return _problem(404, "Not Found")
    if if_none_match is not None and if_none_match.strip() in (f'"{row[8]}"', "*"):
        return Response(status_code=304, headers={"ETag": f'"{row[8]}"'})
    return _one(row)


@app.get("/products")
def list_products(
    skip: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    expand: Annotated[Literal["category"] | None, Query()] = None,
) -> Response:
    source = EXPANDED if expand else f"{COLUMNS} FROM products p"
    with cursor() as cur:
        if skip:
            cur.execute(f"SELECT {source} ORDER BY p.id OFFSET %s LIMIT %s", (skip, limit + 1))
            rows = cur.fetchall()
            cur.execute("SELECT count(*) FROM products")
            count_row = cur.fetchone()
            assert count_row is not None  # count(*) always returns one row
            total = count_row[0]
        else:  # one statement: the page and its total from one snapshot
            count = "(SELECT count(*) FROM products)"
            cur.execute(f"SELECT {count}, {source} ORDER BY p.id LIMIT %s", [limit + 1])
            counted = cur.fetchall()
            total = counted[0][0] if counted else 0
            rows = [row[1:] for row in counted]
    headers = {"X-Total-Count": str(total)}
    if len(rows) > limit:
        headers["Link"] = f'</products?skip={skip + limit}&limit={limit}>; rel="next"'
    page = [_listed(row, expand is not None) for row in rows[:limit]]
    return _json(page, headers=headers)


def _listed(row: tuple[Any, ...], expanded: bool) -> dict[str, Any]:
    product = _product(row[:WIDTH])
    if expanded:
        category_id, name = row[WIDTH : WIDTH + 2]
        product["category"] = None if category_id is None else {"id": category_id, "name": name}
    return product


async def _keyed(
    request: Request, key: Annotated[str | None, Header(alias="Idempotency-Key")] = None
) -> dict[str, Any] | None:
    """The claim's parameters for a keyed request (400 unless one well-formed key), or None."""
    if key is None:
        return None
    values = request.headers.getlist("Idempotency-Key")
    if len(values) != 1 or not KEY.fullmatch(values[0]):
        return {"refused": _problem(400, "Bad Request")}
    body = await request.body()
    fingerprint = hashlib.sha256(
        b"\n".join([request.method.encode(), request.url.path.encode(), body])
    ).hexdigest()
    digest = hashlib.sha256(f"anyone\n{key}".encode()).digest()
    now = datetime.now(UTC)
    return {
        "caller": "anyone",
        "key": key,
        "fingerprint": fingerprint,
        "now": now,
        "expires_at": now + TTL,
        "lock_id": int.from_bytes(digest[:8], "big", signed=True),
    }


def _kept(response: Response, claim: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": response.status_code,
        "location": response.headers.get("location"),
        "etag": response.headers.get("etag"),
        "body": bytes(response.body),
        **claim,
    }


def _replayed(claim: dict[str, Any]) -> Response:
    """The key is committed: replay its answer, or 422 when it was kept for another request."""
    with cursor() as cur:
        cur.execute(KEPT, claim)
        row = cur.fetchone()
    if row is None:
        return _problem(409, "Conflict")  # expired
    fingerprint, status, location, etag, body = row
    if fingerprint != claim["fingerprint"]:
        return _problem(422, "Unprocessable Content")
    headers = {"Idempotent-Replayed": "true"}
    headers.update({"Location": location} if location else {})
    headers.update({"ETag": etag} if etag else {})
    media_type = "application/problem+json" if status >= 400 else "application/json"
    return Response(bytes(body), status, headers, media_type=media_type)


@app.post("/products", status_code=201)
def create_product(
    payload: ProductCreate, claim: Annotated[dict[str, Any] | None, Depends(_keyed)]
) -> Response:
    if claim is None:
        try:
            with cursor(transaction=True) as cur:
                cur.execute(INSERT, payload.model_dump())
                row = cur.fetchone()
                assert row is not None  # INSERT ... RETURNING: one row, or an exception
        except UniqueViolation:
            return _problem(409, "Conflict")
        return _one(row, 201, Location=f"/products/{row[0]}")
    if "refused" in claim:
        return claim["refused"]  # type: ignore[no-any-return]
    try:
        with cursor(transaction=True) as cur:
            cur.execute(CLAIM + INSERT, {**payload.model_dump(), **claim})
            row = cur.fetchone()
            assert row is not None  # INSERT ... RETURNING: one row, or an exception
            response = _one(row, 201, Location=f"/products/{row[0]}")
            cur.execute(KEEP, _kept(response, claim))
        return response
    except LockNotAvailable:  # only the key's lock has a timeout here
        return _problem(409, "Conflict")
    except UniqueViolation as exc:
        if exc.diag.constraint_name == KEYS_PRIMARY_KEY:
            return _replayed(claim)
    # The sku: rolled back with the claim; keep the 409 in a transaction of its own.
    response = _problem(409, "Conflict")
    try:
        with cursor(transaction=True) as cur:
            cur.execute(CLAIM + KEEP, _kept(response, claim))
    except UniqueViolation:
        return _replayed(claim)
    except LockNotAvailable:
        pass  # claimed meanwhile by a request in flight: its answer will be kept
    return response


@app.patch("/products/{product_id}")
def patch_product(
    product_id: ProductId, payload: ProductUpdate, if_match: Annotated[str | None, Header()] = None
) -> Response:
    changes = payload.model_dump(exclude_unset=True)  # field names from the model, never input
    tag = (if_match or "*").strip()
    expected = None if tag == "*" else int(tag[1:-1]) if tag[1:-1].isdigit() else -1
    if changes:
        assignments = "".join(f"{field} = %s, " for field in changes)
        guard = "" if expected is None else f" AND version = {expected}"
        try:
            with cursor(transaction=True) as cur:
                cur.execute(
                    f"UPDATE products SET {assignments}version = version + 1, updated_at = now() "
                    f"WHERE id = %s{guard} RETURNING {COLUMNS}",
                    (*changes.values(), product_id),
                )
                row = cur.fetchone()
        except UniqueViolation:
            return _problem(409, "Conflict")
        if row is not None:
            return _one(row)
    with cursor() as cur:  # an empty patch, or the UPDATE matched nothing: which guard said no
        cur.execute(BY_ID, (product_id,))
        row = cur.fetchone()
    if row is None:
        return _problem(404, "Not Found")
    if changes or expected not in (None, row[8]):
        return _problem(412, "Precondition Failed")
    return _one(row)  # an empty patch: the product as it is
