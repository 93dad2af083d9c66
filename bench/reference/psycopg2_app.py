"""Reference: hand-written FastAPI sync routes on psycopg2, a small pool, no response_model.

Every route is a plain `def`, as in issue 7's yardstick: psycopg2 blocks, so the routes run on
AnyIO's worker threads. (An earlier version read the body in `async def` routes and then ran
the blocking INSERT/UPDATE on the event loop itself, which no service should do and which made
its POST and PATCH look cheaper than the yardstick's.)

The yardstick of bench/throughput.py: the same four operations on the same `products` table,
with nothing but the SQL and the JSON. Run: DATABASE_URL=postgresql://... uvicorn app:app
"""

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Body, FastAPI, Response
from psycopg2.extras import RealDictCursor
from psycopg2.pool import ThreadedConnectionPool

DSN = os.environ["DATABASE_URL"].replace("postgresql+psycopg2://", "postgresql://")
POOL_SIZE = int(os.environ.get("POOL_SIZE", "10"))
# minconn = maxconn: psycopg2 closes every connection returned beyond minconn.
POOL = ThreadedConnectionPool(POOL_SIZE, POOL_SIZE, DSN)
SLOTS = threading.BoundedSemaphore(POOL_SIZE)  # wait for a connection instead of failing
COLUMNS = "id, sku, name, description, price, quantity, created_at, updated_at, version"
app = FastAPI()


@contextmanager
def cursor() -> Iterator[Any]:
    with SLOTS:
        connection = POOL.getconn()
        try:
            with connection, connection.cursor(cursor_factory=RealDictCursor) as cur:
                yield cur
        finally:
            POOL.putconn(connection)


def _default(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value.isoformat()


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, default=_default), status, media_type="application/json")


@app.get("/products/{product_id}")
def read_product(product_id: int) -> Response:
    with cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM products WHERE id = %s", (product_id,))
        row = cur.fetchone()
    return _json(row) if row else _json({"detail": "not found"}, 404)


@app.get("/products")
def list_products(skip: int = 0, limit: int = 100) -> Response:
    with cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM products ORDER BY id OFFSET %s LIMIT %s", (skip, limit))
        return _json(cur.fetchall())


@app.post("/products")
def create_product(body: Annotated[dict[str, Any], Body()]) -> Response:
    with cursor() as cur:
        cur.execute(
            f"INSERT INTO products (sku, name, description, price, quantity, created_at, "
            f"updated_at, version) VALUES (%s, %s, %s, %s, %s, now(), now(), 1) "
            f"RETURNING {COLUMNS}",
            (
                body.get("sku"),
                body["name"],
                body.get("description"),
                body["price"],
                body.get("quantity", 0),
            ),
        )
        return _json(cur.fetchone(), 201)


@app.patch("/products/{product_id}")
def patch_product(product_id: int, body: Annotated[dict[str, Any], Body()]) -> Response:
    assignments = ", ".join(f"{field} = %s" for field in body)
    with cursor() as cur:
        cur.execute(
            f"UPDATE products SET {assignments}, version = version + 1, updated_at = now() "
            f"WHERE id = %s RETURNING {COLUMNS}",
            (*body.values(), product_id),
        )
        row = cur.fetchone()
    return _json(row) if row else _json({"detail": "not found"}, 404)
