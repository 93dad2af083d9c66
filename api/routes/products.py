"""`/products`: HTTP in, crud call, HTTP out. No SQL here."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import TypeAdapter

import crud.products as crud
from api import responses
from api.idempotency import idempotent
from api.openapi import ETAG_HEADER, LIST_HEADERS, LOCATION_HEADER, problem_responses
from api.pagination import cursor_binding, decode_cursor, next_cursor, page_links
from api.routing import EventLoopRoute
from dependencies.conditional import (
    IfMatch,
    IfNoneMatch,
    etag_for,
    none_match_hits,
    none_match_versions,
)
from dependencies.database import ReadSessionDep, SessionDep
from dependencies.writes import JSON_WRITE, WRITE
from models.product import INT4_MAX
from schemas.listing import ProductQuery
from schemas.product import ProductBatch, ProductCreate, ProductRead, ProductUpdate, StockChange

# Opt-in: these routes block on nothing but their session, so they may run on the event loop
# (api/routing.py says how, and the one rule they keep).
router = APIRouter(prefix="/products", tags=["products"], route_class=EventLoopRoute)

CONFLICT = {409: "Conflict: the sku is taken, or the stock would go outside its range."}
IF_MATCH_TAGS = {400: "`If-Match` names more than 100 entity tags."}
IF_NONE_MATCH_TAGS = {400: "`If-None-Match` names more than 100 entity tags."}
UPDATE_WHY = {**CONFLICT, 400: "The body is not valid JSON, or `If-Match` names over 100 tags."}
UPDATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The product after the change.", "headers": ETAG_HEADER},
    **problem_responses(
        400, 401, 404, 409, 412, 413, 415, 422, 503, resource="product", why=UPDATE_WHY
    ),
}

ProductId = Annotated[int, Path(ge=1, le=INT4_MAX, description="The product's id.")]
_product_list = TypeAdapter(list[ProductRead])


@router.get(
    "",
    response_model=list[ProductRead],
    responses={
        200: {"description": "One page of products.", "headers": LIST_HEADERS},
        **problem_responses(422, 503),
    },
)
def list_products(
    request: Request, db: ReadSessionDep, query: Annotated[ProductQuery, Query()]
) -> Response:
    """List products: filter, sort, and page by offset or by cursor."""
    keys = crud.sort_keys(query.sort_order)
    binding = cursor_binding(request, query)
    after = decode_cursor(query.cursor, binding, keys) if query.cursor else None
    # One row more than the page tells whether there is a next page.
    rows, total = crud.list_products(
        db,
        filters=crud.ProductFilters(**query.filters()),
        sort=keys,
        after=after,
        skip=query.skip,
        limit=query.limit + 1,
    )
    headers = {"X-Total-Count": str(total)}
    following = next_cursor(rows, query.limit, keys, binding)
    if link := page_links(request, query, next_cursor=following):
        headers["Link"] = link
    return responses.many(_product_list, rows[: query.limit], headers=headers)


@router.post(
    "",
    status_code=201,
    response_model=ProductRead,
    dependencies=JSON_WRITE,
    responses={
        201: {"description": "Created.", "headers": {**LOCATION_HEADER, **ETAG_HEADER}},
        **problem_responses(400, 401, 409, 413, 415, 422, 503, why=CONFLICT),
    },
)
@idempotent
def create_product(request: Request, payload: ProductCreate, db: SessionDep) -> Response:
    """Create a product."""
    product = crud.create_product(db, values=payload.model_dump())
    location = request.app.url_path_for("read_product", product_id=product.id)
    return responses.one(ProductRead, product, status_code=201, headers={"Location": location})


@router.post(
    "/bulk",
    status_code=201,
    response_model=list[ProductRead],
    dependencies=JSON_WRITE,
    responses={
        201: {"description": "Created, in request order."},
        **problem_responses(400, 401, 409, 413, 415, 422, 503, why=CONFLICT),
    },
)
@idempotent
def create_products(payload: Annotated[ProductBatch, Body()], db: SessionDep) -> Response:
    """Create 1 to 1000 products at once: all of them, or none."""
    products = crud.create_products(db, rows=[item.model_dump() for item in payload])
    return responses.many(_product_list, products, status_code=201)


@router.get(
    "/{product_id:int}",
    response_model=ProductRead,
    responses={
        200: {"description": "The product.", "headers": ETAG_HEADER},
        304: {
            "description": "Not Modified: `If-None-Match` names the current ETag.",
            "headers": ETAG_HEADER,
        },
        **problem_responses(400, 404, 422, 503, resource="product", why=IF_NONE_MATCH_TAGS),
    },
)
def read_product(
    product_id: ProductId, db: ReadSessionDep, if_none_match: IfNoneMatch = None
) -> Response:
    """Read one product."""
    not_modified_at = none_match_versions(if_none_match)
    product = crud.read_product(db, product_id)
    if none_match_hits(not_modified_at, product.version):
        return Response(status_code=304, headers={"ETag": etag_for(product.version)})
    return responses.one(ProductRead, product)


def _update(
    db: SessionDep, product_id: int, payload: ProductUpdate, if_match: frozenset[int] | None
) -> Response:
    changes: dict[str, Any] = payload.model_dump(exclude_unset=True)
    product = crud.update_product(db, product_id, changes=changes, expected_versions=if_match)
    return responses.one(ProductRead, product)


@router.put(
    "/{product_id:int}",
    response_model=ProductRead,
    dependencies=JSON_WRITE,
    responses=UPDATE_RESPONSES,
)
def replace_product(
    product_id: ProductId, payload: ProductUpdate, db: SessionDep, if_match: IfMatch
) -> Response:
    """Update a product: only the fields sent change."""
    return _update(db, product_id, payload, if_match)


@router.patch(
    "/{product_id:int}",
    response_model=ProductRead,
    dependencies=JSON_WRITE,
    responses=UPDATE_RESPONSES,
)
def patch_product(
    product_id: ProductId, payload: ProductUpdate, db: SessionDep, if_match: IfMatch
) -> Response:
    """Update a product with a JSON merge patch."""
    return _update(db, product_id, payload, if_match)


@router.delete(
    "/{product_id:int}",
    status_code=204,
    dependencies=WRITE,
    responses={
        204: {"description": "Deleted."},
        **problem_responses(400, 401, 404, 412, 422, 503, resource="product", why=IF_MATCH_TAGS),
    },
)
def delete_product(product_id: ProductId, db: SessionDep, if_match: IfMatch) -> Response:
    """Delete a product."""
    crud.delete_product(db, product_id, expected_versions=if_match)
    return Response(status_code=204)


@router.post(
    "/{product_id:int}/stock",
    response_model=ProductRead,
    dependencies=JSON_WRITE,
    responses=UPDATE_RESPONSES,
)
@idempotent
def change_stock(
    product_id: ProductId, payload: StockChange, db: SessionDep, if_match: IfMatch
) -> Response:
    """Add `delta` to the quantity atomically; 409 if the result would be out of range."""
    product = crud.change_stock(db, product_id, delta=payload.delta, expected_versions=if_match)
    return responses.one(ProductRead, product)
