"""The client's architecture and nothing else, run the way FastAPI runs it by default.

engine -> SessionLocal -> one session per request through an async yield dependency
(`scope="function"`) -> a sync route, on one of AnyIO's worker threads, that runs one Core
SELECT on the session's connection and writes the row with pydantic. No middleware, logging,
metrics, ETag, validation limits or problem handlers. `bench/cpu_per_request.py
architecture_floor:app get --app-dir bench/reference` next to the hand-written psycopg2 app
shows the best ratio a service built this way can reach while every request is handed to a
thread and back; the service runs its routes in the event loop instead (database/event_loop.py,
bench/README.md). Only GET /products/{id}.
"""

import os
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy import bindparam, column, create_engine, select, table
from sqlalchemy.orm import Session, sessionmaker

URL = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://", 1)
engine = create_engine(URL, pool_size=10, max_overflow=0)
SessionLocal = sessionmaker(bind=engine, autoflush=False, expire_on_commit=False)
NAMES = [
    "id",
    "sku",
    "name",
    "description",
    "price",
    "quantity",
    "created_at",
    "updated_at",
    "version",
]
PRODUCTS = table("products", *(column(name) for name in NAMES))
ROW_BY_ID = select(*PRODUCTS.c).where(PRODUCTS.c.id == bindparam("product_id"))
app = FastAPI()


class Product(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    sku: str | None
    name: str
    description: str | None
    price: float
    quantity: int
    created_at: datetime
    updated_at: datetime
    version: int


async def get_session() -> AsyncIterator[Session]:
    session = SessionLocal()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


@app.get("/products/{product_id}")
def read_product(product_id: int, session: SessionDep) -> Response:
    row = session.connection().execute(ROW_BY_ID, {"product_id": product_id}).one_or_none()
    session.commit()
    if row is None:
        return Response(b'{"detail":"not found"}', 404, media_type="application/json")
    return Response(Product.model_validate(row).model_dump_json(), media_type="application/json")
