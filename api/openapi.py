"""The OpenAPI document, made to tell the whole truth about every operation.

Routes declare the statuses they can answer with `problem_responses(...)` and their success
headers; `build_openapi` then fixes what FastAPI cannot express on its own: errors are
`application/problem+json` with the `Problem` schema (422 included), every response carries
`X-Request-ID`, PATCH also takes `application/merge-patch+json`, the response schema of a
product is called `Product`, and the API-key schemes the writes accept are declared.
"""

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.problems import PROBLEM_MEDIA_TYPE
from dependencies.access import security_schemes
from schemas.problem import Problem

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _header(description: str, **schema: Any) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string", **schema}}


ETAG_HEADER = {"ETag": _header('The product\'s version as an entity tag, e.g. `"3"`.')}
LOCATION_HEADER = {"Location": _header("Path of the created product, e.g. `/products/42`.")}
LIST_HEADERS = {
    "X-Total-Count": {
        "description": "Number of products matching the filters (all pages).",
        "schema": {"type": "integer", "minimum": 0},
    },
    "Link": _header('RFC 8288 links: `rel="next"` (cursor), `rel="prev"`, `rel="first"`.'),
}
REQUEST_ID_HEADER = {
    "X-Request-ID": _header("The request's id: the client's own if sane, else generated.")
}

_WHY: dict[int, str] = {
    400: "The body is not valid JSON.",
    401: "Writes need an API key (`Authorization: Bearer <key>` or `X-API-Key`).",
    404: "No product has this id.",
    409: "Conflict: the sku is taken, or the stock would go below zero.",
    412: "`If-Match` does not match the product's current ETag; nothing changed.",
    413: "The body is larger than 1 MiB.",
    415: "The body is not JSON (`application/json` or `application/*+json`).",
    422: "A parameter or a body field is invalid; `errors` lists each one.",
    503: "The database is unavailable or overloaded; retry after `Retry-After` seconds.",
}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": _header("`Bearer`: how to authenticate.")},
    503: {"Retry-After": _header("Seconds to wait before retrying.")},
}


def _links_to_the_product(id_expression: str) -> dict[str, Any]:
    """OpenAPI links from a response naming a product to what a client does next with it."""
    by_id = {"product_id": id_expression}
    with_etag = {**by_id, "header.If-Match": "$response.header.ETag"}
    return {
        "ReadProduct": {"operationId": "read_product", "parameters": by_id},
        "ReplaceProduct": {"operationId": "replace_product", "parameters": with_etag},
        "PatchProduct": {"operationId": "patch_product", "parameters": with_etag},
        "ChangeStock": {"operationId": "change_stock", "parameters": with_etag},
        "DeleteProduct": {"operationId": "delete_product", "parameters": with_etag},
    }


# (operationId, status) -> links: the flows a stateful client (or fuzzer) can follow.
_LINKS = {
    ("create_product", "201"): _links_to_the_product("$response.body#/id"),
    ("read_product", "200"): _links_to_the_product("$response.body#/id"),
    ("patch_product", "200"): _links_to_the_product("$response.body#/id"),
    ("create_products", "201"): {
        "ReadFirstProduct": {
            "operationId": "read_product",
            "parameters": {"product_id": "$response.body#/0/id"},
        }
    },
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for the error statuses an operation can answer."""
    return {
        status: {
            "description": f"{HTTPStatus(status).phrase}. {_WHY[status]}",
            "model": Problem,
            **({"headers": _ERROR_HEADERS[status]} if status in _ERROR_HEADERS else {}),
        }
        for status in statuses
    }


def _rename_schema(document: dict[str, Any], old: str, new: str) -> None:
    schemas = document["components"]["schemas"]
    schemas[new] = schemas.pop(old)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("$ref") == f"#/components/schemas/{old}":
                node["$ref"] = f"#/components/schemas/{new}"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)


_METHOD_ORDER = ("get", "post", "put", "patch", "delete")


def _in_reading_order(paths: dict[str, Any]) -> dict[str, Any]:
    """Paths sorted, and each path's operations in the usual order of their methods: the
    routes themselves are declared in the order that matches requests fastest."""

    def method_rank(method: str) -> int:
        return _METHOD_ORDER.index(method) if method in _METHOD_ORDER else len(_METHOD_ORDER)

    return {
        path: {method: item[method] for method in sorted(item, key=method_rank)}
        for path, item in sorted(paths.items())
    }


def build_openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    _rename_schema(document, "ProductRead", "Product")
    # The writes name the API-key schemes (`openapi_extra`); the schemes themselves go here.
    document["components"].setdefault("securitySchemes", {}).update(security_schemes())
    schemas = document["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    # Fields that may be left out of an update but never be null: no `default: null` either.
    for field in ("name", "price", "quantity"):
        schemas["ProductUpdate"]["properties"][field].pop("default", None)

    for path_item in document["paths"].values():
        for method, operation in path_item.items():
            # A route's one-line docstring is its summary (FastAPI would title-case its name).
            docstring = operation.get("description", "")
            if docstring and "\n" not in docstring:
                operation["summary"] = operation.pop("description")
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF}}
                    if int(status) == 422:
                        response["description"] = f"Unprocessable Content. {_WHY[422]}"
                response.setdefault("headers", {}).update(REQUEST_ID_HEADER)
                if links := _LINKS.get((operation["operationId"], status)):
                    response["links"] = links
            body = operation.get("requestBody", {}).get("content", {})
            if method == "patch" and "application/json" in body:
                body["application/merge-patch+json"] = body["application/json"]
    document["paths"] = _in_reading_order(document["paths"])
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve `build_openapi(app)` at /openapi.json, built once on first use (FastAPI's recipe)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
