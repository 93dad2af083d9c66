"""GET /products/{id} built up one layer at a time: where the service's instructions go.

    LAYER=select .venv/bin/python bench/cpu_per_request.py get_layers:app get \
        --app-dir bench/reference --instructions

Each `LAYER` adds one thing to the one before it (bench/README.md has the figures):

- `bare`: FastAPI, an `async def` route with the path parameter, returning a constant;
- `greenlet`: the route's body run in a greenlet, as `api.routing.SessionRoute` runs it;
- `yield`: plus an `async` yield dependency that does nothing (`scope="function"`);
- `connect`: plus a pool slot (`asyncio.Semaphore`) and `engine.connect()` / `close()`;
- `session`: a `Session` from `SessionLocal` instead: `connection()`, `commit()`, `close()`;
- `select`: plus the crud's Core `SELECT` on that connection;
- `response`: plus pydantic and the JSON response (`api.responses.one`), the service's body.

Two more, off the ladder: `plain` (`bare` plus an `async` dependency that is not a
generator) and `cursor` (`connect` plus the same SELECT on psycopg2's own cursor).
The service's own engine, `SessionLocal` and crud statement; no middleware, handlers or
`If-None-Match`.
"""

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fastapi import APIRouter, Depends, FastAPI, Response
from sqlalchemy.util.concurrency import greenlet_spawn

from api import responses
from api.routes.products import ProductId
from crud import shared
from crud.products import RESOURCE, ProductRecord
from database.engine import engine
from database.session import SessionLocal
from schemas.product import ProductRead

LAYERS = ["bare", "greenlet", "yield", "connect", "session", "select", "response"]
LAYER = os.environ.get("LAYER", "response")
SQL = "SELECT id, sku, name, description, price, quantity, created_at, updated_at, version "
SQL += "FROM products WHERE id = %s"
SLOTS = asyncio.Semaphore(10)  # the pool's size: nobody waits inside the pool
router = APIRouter(prefix="/products")  # included, as the service's routes are


def _constant() -> Response:
    return Response(b'{"id":1}', media_type="application/json")


def _has(layer: str) -> bool:
    rung = {"plain": "bare", "cursor": "connect"}.get(LAYER, LAYER)
    return LAYERS.index(rung) >= LAYERS.index(layer)


def _body(product_id: int) -> Response:
    if LAYER == "cursor":
        with engine.connect() as connection:
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            cursor.execute(SQL, (product_id,))
            cursor.fetchone()
        return _constant()
    if _has("session"):
        session = SessionLocal()
        connection = session.connection()
        row: Any = None
        if _has("select"):
            row = ProductRecord._make(
                connection.execute(RESOURCE.read, {shared.ROW_ID: product_id}).one()
            )
        session.commit()
        session.close()
        return responses.one(ProductRead, row) if _has("response") else _constant()
    if _has("connect"):
        with engine.connect():
            pass
    return _constant()


async def _nothing_yielded() -> AsyncIterator[None]:
    yield


async def _nothing_returned() -> None:
    return None


async def _run(product_id: int) -> Response:
    if not _has("greenlet"):
        return _constant()
    if _has("connect"):
        async with SLOTS:
            return await greenlet_spawn(_body, product_id)
    return await greenlet_spawn(_body, product_id)


if LAYER == "plain" or _has("yield"):
    dependency = _nothing_returned if LAYER == "plain" else _nothing_yielded

    @router.get("/{product_id:int}")
    async def read_product_after_a_dependency(
        product_id: ProductId, _nothing: Annotated[None, Depends(dependency, scope="function")]
    ) -> Response:
        return await _run(product_id)

else:

    @router.get("/{product_id:int}")
    async def read_product(product_id: ProductId) -> Response:
        return await _run(product_id)


app = FastAPI()
app.include_router(router)
