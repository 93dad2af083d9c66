"""`/products`: HTTP in, crud call, HTTP out. No SQL here."""

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import TypeAdapter

import crud.products as crud
from api import openapi, responses
from api.idempotency import IdempotencyDep
from api.pagination import page_response
from api.routing import update_routes
from dependencies.conditional import IfMatch, IfNoneMatch
from dependencies.database import ReadSessionDep, SessionDep
from dependencies.writes import BODILESS_WRITE, JSON_WRITE
from models.product import INT4_MAX
from schemas.listing import EXPAND_DESCRIPTION, Expand, ProductQuery
from schemas.product import (
    ProductBatch,
    ProductCreate,
    ProductFields,
    ProductRead,
    ProductUpdate,
    StockChange,
)

router = APIRouter(prefix="/products", tags=["products"])

CONFLICT = {409: "Conflict: the sku is taken, or the stock would go outside its range."}
UPDATE_RESPONSES = openapi.update_responses("product", CONFLICT)

ProductId = Annotated[int, Path(ge=1, le=INT4_MAX, description="The product's id.")]
ExpandParameter = Annotated[Expand | None, Query(description=EXPAND_DESCRIPTION)]
# Answers are written from `ProductFields`, or `ProductRead` with `expand=category`.
_product_list = TypeAdapter(list[ProductFields])
_expanded_list = TypeAdapter(list[ProductRead])


@router.get("", response_model=list[ProductRead], responses=openapi.list_responses("products"))
def list_products(
    request: Request, db: ReadSessionDep, query: Annotated[ProductQuery, Query()]
) -> Response:
    """List products: filter, sort, and page by offset or by cursor."""
    filters = crud.ProductFilters(**query.filters())
    expanded = query.expand == "category"
    return page_response(
        request,
        query,
        sort_keys=crud.sort_keys,
        fetch=lambda paging: crud.list_products(
            db, filters=filters, paging=paging, with_category=expanded
        ),
        adapter=_expanded_list if expanded else _product_list,
    )


@router.post(
    "",
    status_code=201,
    response_model=ProductRead,
    dependencies=JSON_WRITE,
    responses=openapi.create_responses(CONFLICT),
)
def create_product(
    request: Request, payload: ProductCreate, db: SessionDep, idempotency: IdempotencyDep
) -> Response:
    """Create a product."""
    product = crud.create_product(db, values=payload.model_dump())
    location = request.app.url_path_for("read_product", product_id=product.id)
    return idempotency.keep(
        responses.one(ProductFields, product, status_code=201, location=location)
    )


@router.post(
    "/bulk",
    status_code=201,
    response_model=list[ProductRead],
    dependencies=JSON_WRITE,
    responses={
        201: {"description": "Created, in request order."},
        **openapi.problem_responses(400, 401, 409, 413, 415, 422, 503, why=CONFLICT),
    },
)
def create_products(
    payload: Annotated[ProductBatch, Body()], db: SessionDep, idempotency: IdempotencyDep
) -> Response:
    """Create 1 to 1000 products at once: all of them, or none."""
    products = crud.create_products(db, rows=[item.model_dump() for item in payload])
    return idempotency.keep(responses.many(_product_list, products, status_code=201))


@router.get(
    "/{product_id:digits}", response_model=ProductRead, responses=openapi.read_responses("product")
)
def read_product(
    product_id: ProductId,
    db: ReadSessionDep,
    if_none_match: IfNoneMatch,
    expand: ExpandParameter = None,
) -> Response:
    """Read one product."""
    product = crud.get_product(db, product_id, with_category=expand == "category")
    schema = ProductRead if expand == "category" else ProductFields
    return responses.current(schema, product, if_none_match)


@update_routes(
    router,
    "/{product_id:digits}",
    "product",
    response_model=ProductRead,
    dependencies=JSON_WRITE,
    responses=UPDATE_RESPONSES,
)
def update_product(
    product_id: ProductId, payload: ProductUpdate, db: SessionDep, if_match: IfMatch
) -> Response:
    changes = payload.model_dump(exclude_unset=True)
    product = crud.update_product(db, product_id, changes=changes, expected_versions=if_match)
    return responses.one(ProductFields, product)


@router.delete(
    "/{product_id:digits}",
    status_code=204,
    dependencies=BODILESS_WRITE,
    responses=openapi.delete_responses("product"),
)
def delete_product(product_id: ProductId, db: SessionDep, if_match: IfMatch) -> Response:
    """Delete a product."""
    crud.delete_product(db, product_id, expected_versions=if_match)
    return Response(status_code=204)


@router.post(
    "/{product_id:digits}/stock",
    response_model=ProductRead,
    dependencies=JSON_WRITE,
    responses=UPDATE_RESPONSES,
)
def change_stock(
    product_id: ProductId,
    payload: StockChange,
    db: SessionDep,
    if_match: IfMatch,
    idempotency: IdempotencyDep,
) -> Response:
    """Add `delta` to the quantity atomically; 409 if the result would be out of range."""
    product = crud.change_stock(db, product_id, delta=payload.delta, expected_versions=if_match)
    return idempotency.keep(responses.one(ProductFields, product))
