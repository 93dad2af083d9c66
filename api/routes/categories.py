"""`/categories`: HTTP in, crud call, HTTP out, with the products' conventions and helpers."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import TypeAdapter

import crud.categories as crud
from api import openapi, responses
from api.idempotency import IdempotencyDep
from api.pagination import page_response
from api.routing import update_routes
from dependencies.conditional import IfMatch, IfNoneMatch
from dependencies.database import ReadSessionDep, SessionDep
from dependencies.writes import BODILESS_WRITE, JSON_WRITE
from models.product import INT4_MAX
from schemas.category import CategoryCreate, CategoryRead, CategoryUpdate
from schemas.listing import CategoryQuery

router = APIRouter(prefix="/categories", tags=["categories"])

DUPLICATE_NAME = {409: "Conflict: a category of this name (ignoring case) exists."}
CategoryId = Annotated[int, Path(ge=1, le=INT4_MAX, description="The category's id.")]
_category_list = TypeAdapter(list[CategoryRead])


@router.get("", response_model=list[CategoryRead], responses=openapi.list_responses("categories"))
def list_categories(
    request: Request, db: ReadSessionDep, query: Annotated[CategoryQuery, Query()]
) -> Response:
    """List categories: search by name, sort, and page by offset or by cursor."""
    filters = crud.CategoryFilters(**query.filters())
    return page_response(
        request,
        query,
        sort_keys=crud.sort_keys,
        fetch=lambda paging: crud.list_categories(db, filters=filters, paging=paging),
        adapter=_category_list,
    )


@router.post(
    "",
    status_code=201,
    response_model=CategoryRead,
    dependencies=JSON_WRITE,
    responses=openapi.create_responses(DUPLICATE_NAME),
)
def create_category(
    request: Request, payload: CategoryCreate, db: SessionDep, idempotency: IdempotencyDep
) -> Response:
    """Create a category."""
    category = crud.create_category(db, values=payload.model_dump())
    location = request.app.url_path_for("read_category", category_id=category.id)
    return idempotency.keep(
        responses.one(CategoryRead, category, status_code=201, location=location)
    )


@router.get(
    "/{category_id:digits}",
    response_model=CategoryRead,
    responses=openapi.read_responses("category"),
)
def read_category(
    category_id: CategoryId, db: ReadSessionDep, if_none_match: IfNoneMatch
) -> Response:
    """Read one category."""
    return responses.current(CategoryRead, crud.get_category(db, category_id), if_none_match)


@update_routes(
    router,
    "/{category_id:digits}",
    "category",
    response_model=CategoryRead,
    dependencies=JSON_WRITE,
    responses=openapi.update_responses("category", DUPLICATE_NAME),
)
def update_category(
    category_id: CategoryId, payload: CategoryUpdate, db: SessionDep, if_match: IfMatch
) -> Response:
    changes = payload.model_dump(exclude_unset=True)
    category = crud.update_category(db, category_id, changes=changes, expected_versions=if_match)
    return responses.one(CategoryRead, category)


IN_USE = {409: "Conflict: products still name this category (the problem says how many)."}


@router.delete(
    "/{category_id:digits}",
    status_code=204,
    dependencies=BODILESS_WRITE,
    responses=openapi.delete_responses("category", 409, why=IN_USE),
)
def delete_category(category_id: CategoryId, db: SessionDep, if_match: IfMatch) -> Response:
    """Delete a category that no product names."""
    crud.delete_category(db, category_id, expected_versions=if_match)
    return Response(status_code=204)
