"""Reference: the textbook app, the FastAPI + SQLAlchemy guide's template as FastAPI's full-stack
template (fastapi/full-stack-fastapi-template, backend/app) writes it today, on the service's
`products` table. What a tutorial user builds; no tuning, no tricks.

- Plain `def` routes (FastAPI's threadpool), one module-level engine from DATABASE_URL with
  SQLAlchemy's default pool (5 + 10 overflow), one `SessionLocal`, and a yield dependency that
  closes the session (closing rolls back whatever is left open). Writes commit where the
  template's crud does, in the route: `session.add`, `session.commit`, `session.refresh`.
- The ORM throughout: `session.get`, `select()`, pydantic v2 models and `response_model`.
- The list counts as the template's does (a second query); its body is a JSON array, so the
  count goes to `X-Total-Count`. POST answers 201, PATCH changes the fields sent.

Left out: ETags and versions, idempotency keys, problem+json, request ids, logs, metrics.
Run from this directory: DATABASE_URL=postgresql+psycopg2://... uvicorn textbook_app:app
"""

import os
from collections.abc import Generator
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import DateTime, Numeric, String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

engine = create_engine(os.environ["DATABASE_URL"])
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)


class Base(DeclarativeBase):
    pass


class Product(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    description: Mapped[str | None] = mapped_column(String(500))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    quantity: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    version: Mapped[int] = mapped_column(default=1)
    category_id: Mapped[int | None]


class ProductBase(BaseModel):
    sku: str | None = Field(default=None, max_length=64)
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    price: float = Field(gt=0)
    quantity: int = Field(default=0, ge=0)


class ProductCreate(ProductBase):
    pass


class ProductUpdate(BaseModel):
    sku: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    price: float | None = Field(default=None, gt=0)
    quantity: int | None = Field(default=None, ge=0)


class ProductPublic(ProductBase):
    model_config = ConfigDict(from_attributes=True)
    id: int
    created_at: datetime
    updated_at: datetime
    version: int
    category_id: int | None


def get_db() -> Generator[Session, None, None]:
    with SessionLocal() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]
app = FastAPI()


@app.get("/products/{product_id}", response_model=ProductPublic)
def read_product(session: SessionDep, product_id: int) -> Any:
    product = session.get(Product, product_id)
    if not product:
        raise HTTPException(status_code=404, detail="Product not found")
    return product


@app.get("/products", response_model=list[ProductPublic])
def read_products(session: SessionDep, response: Response, skip: int = 0, limit: int = 100) -> Any:
    count = session.scalar(select(func.count()).select_from(Product))
    response.headers["X-Total-Count"] = str(count)
    return session.scalars(select(Product).order_by(Product.id).offset(skip).limit(limit)).all()


@app.post("/products", response_model=ProductPublic, status_code=201)
def create_product(session: SessionDep, product_in: ProductCreate) -> Any:
    product = Product(**product_in.model_dump())
    session.add(product)
    session.commit()
    session.refresh(product)
    return product


@app.patch("/products/{product_id}", response_model=ProductPublic)
def update_product(session: SessionDep, product_id: int, product_in: ProductUpdate) -> Any:
    product = session.get(Product, product_id)
    if not product:
        raise HTTPException(status_code=404, detail="Product not found")
    for field, value in product_in.model_dump(exclude_unset=True).items():
        setattr(product, field, value)
    session.add(product)
    session.commit()
    session.refresh(product)
    return product
