"""`/products`: HTTP in, crud call, HTTP out. No SQL here."""

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import TypeAdapter
from sqlalchemy import Row

import crud.products as crud
from api.openapi import ETAG_HEADER, LIST_HEADERS, LOCATION_HEADER, problem_responses
from api.pagination import cursor_binding, decode_cursor, encode_cursor, page_links
from api.routing import SessionRoute
from dependencies.access import WRITE_SECURITY, require_write_access
from dependencies.conditional import IfMatch, IfNoneMatch, etag_for, none_match_hits
from dependencies.content_type import require_json_write
from dependencies.database import SessionDep
from schemas.listing import ProductQuery
from schemas.product import (
    INT4_MAX,
    ProductBatch,
    ProductCreate,
    ProductRead,
    ProductUpdate,
    StockChange,
)

router = APIRouter(prefix="/products", tags=["products"], route_class=SessionRoute)

# Writes need an API key (when API_KEYS is set); writes with a body need a JSON body. Each is
# one dependency, and the OpenAPI document names the key schemes on every write.
WRITE: dict[str, Any] = {
    "dependencies": [Depends(require_write_access)],
    "openapi_extra": WRITE_SECURITY,
}
JSON_WRITE: dict[str, Any] = {
    "dependencies": [Depends(require_json_write)],
    "openapi_extra": WRITE_SECURITY,
}
UPDATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The product after the change.", "headers": ETAG_HEADER},
    **problem_responses(400, 401, 404, 409, 412, 413, 415, 422, 503),
}

ProductId = Annotated[int, Path(ge=1, le=INT4_MAX, description="The product's id.")]
_products_json = TypeAdapter(list[ProductRead])


def _product_response(
    product: Row[Any], *, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    # Serialise once, straight to bytes: returning a Response skips FastAPI's re-validation.
    body = ProductRead.model_validate(product).model_dump_json()
    return Response(
        body,
        status_code=status_code,
        media_type="application/json",
        headers={"ETag": etag_for(product.version), **(headers or {})},
    )


def _products_response(
    products: Sequence[Row[Any]],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    body = _products_json.dump_json(_products_json.validate_python(products, from_attributes=True))
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


# The routes, busiest first. FastAPI tries them in this order, and every route tried before the
# one that matches costs the request CPU (twice: once to choose this router, once within it).
# No two of them overlap for one method, so the order changes nothing else.
@router.get(
    "/{product_id:int}",
    response_model=ProductRead,
    responses={
        200: {"description": "The product.", "headers": ETAG_HEADER},
        304: {
            "description": "Not Modified: `If-None-Match` names the current ETag.",
            "headers": ETAG_HEADER,
        },
        **problem_responses(404, 422, 503),
    },
)
def read_product(
    product_id: ProductId, db: SessionDep, if_none_match: IfNoneMatch = None
) -> Response:
    """Read one product."""
    product = crud.read_product(db, product_id)
    if none_match_hits(if_none_match, product.version):
        return Response(status_code=304, headers={"ETag": etag_for(product.version)})
    return _product_response(product)


@router.post(
    "",
    status_code=201,
    response_model=ProductRead,
    **JSON_WRITE,
    responses={
        201: {"description": "Created.", "headers": {**LOCATION_HEADER, **ETAG_HEADER}},
        **problem_responses(400, 401, 409, 413, 415, 422, 503),
    },
)
def create_product(payload: ProductCreate, db: SessionDep) -> Response:
    """Create a product."""
    product = crud.create_product(db, values=payload.model_dump())
    # read_product's path, written out: url_path_for walks every route (2% of a POST).
    location = f"{router.prefix}/{product.id}"
    return _product_response(product, status_code=201, headers={"Location": location})


@router.get(
    "",
    response_model=list[ProductRead],
    responses={
        200: {"description": "One page of products.", "headers": LIST_HEADERS},
        **problem_responses(422, 503),
    },
)
def list_products(
    request: Request, db: SessionDep, query: Annotated[ProductQuery, Query()]
) -> Response:
    """List products: filter, sort, and page by offset or by cursor."""
    sort = crud.sort_columns([(key.field, key.descending) for key in query.sort_keys])
    fields = [field for field, _ in sort]
    binding = cursor_binding(query)
    after = decode_cursor(query.cursor, binding, fields) if query.cursor else None
    filters = query.filters()
    # One row more than the page tells whether there is a next page.
    rows, total = crud.list_products(
        db, sort=sort, after=after, skip=query.skip, limit=query.limit + 1, **filters
    )
    page = rows[: query.limit]
    next_cursor = None
    if len(rows) > query.limit:
        next_cursor = encode_cursor([getattr(page[-1], field) for field in fields], binding)
    headers = {"X-Total-Count": str(total)}
    if link := page_links(request, query, next_cursor=next_cursor):
        headers["Link"] = link
    return _products_response(page, headers=headers)


def _update(
    db: SessionDep, product_id: int, payload: ProductUpdate, if_match: frozenset[int] | None
) -> Response:
    changes: dict[str, Any] = payload.model_dump(exclude_unset=True)
    product = crud.update_product(db, product_id, changes=changes, expected_versions=if_match)
    return _product_response(product)


@router.patch(
    "/{product_id:int}",
    response_model=ProductRead,
    **JSON_WRITE,
    responses=UPDATE_RESPONSES,
)
def patch_product(
    product_id: ProductId, payload: ProductUpdate, db: SessionDep, if_match: IfMatch
) -> Response:
    """Update a product with a JSON merge patch."""
    return _update(db, product_id, payload, if_match)


@router.put(
    "/{product_id:int}",
    response_model=ProductRead,
    **JSON_WRITE,
    responses=UPDATE_RESPONSES,
)
def replace_product(
    product_id: ProductId, payload: ProductUpdate, db: SessionDep, if_match: IfMatch
) -> Response:
    """Update a product: only the fields sent change."""
    return _update(db, product_id, payload, if_match)


@router.post(
    "/{product_id:int}/stock",
    response_model=ProductRead,
    **JSON_WRITE,
    responses=UPDATE_RESPONSES,
)
def change_stock(
    product_id: ProductId, payload: StockChange, db: SessionDep, if_match: IfMatch
) -> Response:
    """Add `delta` to the quantity atomically; 409 if the result would be below 0."""
    product = crud.change_stock(db, product_id, delta=payload.delta, expected_versions=if_match)
    return _product_response(product)


@router.delete(
    "/{product_id:int}",
    status_code=204,
    **WRITE,
    responses={204: {"description": "Deleted."}, **problem_responses(401, 404, 412, 422, 503)},
)
def delete_product(product_id: ProductId, db: SessionDep, if_match: IfMatch) -> Response:
    """Delete a product."""
    crud.delete_product(db, product_id, expected_versions=if_match)
    return Response(status_code=204)


@router.post(
    "/bulk",
    status_code=201,
    response_model=list[ProductRead],
    **JSON_WRITE,
    responses={
        201: {"description": "Created, in request order."},
        **problem_responses(400, 401, 409, 413, 415, 422, 503),
    },
)
def create_products(payload: Annotated[ProductBatch, Body()], db: SessionDep) -> Response:
    """Create 1 to 1000 products at once: all of them, or none."""
    products = crud.create_products(db, rows=[item.model_dump() for item in payload])
    return _products_response(products, status_code=201)
