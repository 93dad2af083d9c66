"""The OpenAPI document: each operation's answers (`*_responses`), and what FastAPI cannot
express on its own (`build_openapi`): problem+json errors, headers, links, and a security scheme
and `Consistency-Token` only when configured."""

import json
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.idempotency import KEPT_REFUSALS, KEY_HEADER, KEY_PATTERN, REPLAYED_HEADER
from api.problems import PROBLEM_MEDIA_TYPE
from api.replica import HEADER as CONSISTENCY_HEADER
from config import get_settings
from database.replica import LSN_PATTERN
from schemas.problem import Problem

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _header(description: str, **schema: Any) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string", **schema}}


ETAG_HEADER = {"ETag": _header('The version as an entity tag, e.g. `"3"`.')}
LOCATION_HEADER = {"Location": _header("Path of what was created, e.g. `/products/42`.")}
LIST_HEADERS = {
    "X-Total-Count": _header(
        "Number of rows matching the filters (all pages).", type="integer", minimum=0
    ),
    "Link": _header('RFC 8288 links: `rel="next"` (cursor), `rel="prev"`, `rel="first"`.'),
}
REQUEST_ID_HEADER = {
    "X-Request-ID": _header("The request's id: the client's own if sane, else generated.")
}

# Why each status is answered; `{resource}` is the operation's resource ("product", ...).
_WHY: dict[int, str] = {
    400: "The body is not valid JSON.",
    401: "Writes need an API key (`Authorization: Bearer <key>` or `X-API-Key`).",
    404: "No {resource} has this id.",
    409: "The change conflicts with existing data.",
    412: "`If-Match` does not match the {resource}'s current ETag; nothing changed.",
    413: "The body is larger than 1 MiB.",
    415: "The body is not JSON (`application/json` or `application/*+json`).",
    422: "A parameter or a body field is invalid; `errors` lists each one.",
    503: "The database is unavailable or overloaded; retry after `Retry-After` seconds.",
}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": _header("`Bearer`: how to authenticate.")},
    503: {"Retry-After": _header("Seconds to wait before retrying.")},
}


# Operations that take an `Idempotency-Key` (`api.idempotency`): what else they answer.
_REPLAYED_HEADER = {
    REPLAYED_HEADER: _header(
        f"`true` when this is the answer kept for the request's `{KEY_HEADER}`, sent again.",
        enum=["true"],
    )
}
_KEYED_WHY = {
    400: f"Or `{KEY_HEADER}` is not 1 to 255 visible ASCII characters, or is sent twice.",
    409: f"Or a request with this `{KEY_HEADER}` is still being carried out: retry after "
    "`Retry-After` seconds.",
    422: f"Or this `{KEY_HEADER}` was used for a different request (method, path or body).",
}


def _document_idempotency(operation: dict[str, Any]) -> None:
    """The key's format, the statuses it adds, and the header a replayed answer carries."""
    parameters = operation.get("parameters", [])
    key = next((p for p in parameters if p["in"] == "header" and p["name"] == KEY_HEADER), None)
    if key is None:
        return
    key["schema"] = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": KEY_PATTERN}
    for status, response in operation["responses"].items():
        code = int(status)
        if code < 300 or code in KEPT_REFUSALS:
            response["headers"].update(_REPLAYED_HEADER)
        if code in _KEYED_WHY:
            response["description"] += f" {_KEYED_WHY[code]}"
        if code == 409:
            response["headers"]["Retry-After"] = _ERROR_HEADERS[503]["Retry-After"]


# Only with a replica (DATABASE_READ_URL; api/replica.py): every 2xx of a write
# carries a token, and a read of the catalog may send it back to see that write.
_CATALOG_PATHS = ("/products", "/categories")  # the routes that read with ReadSessionDep
_TOKEN_HEADER = {
    CONSISTENCY_HEADER: _header(
        "Send it back in the same header with a later read to see this write, on any "
        "instance. Opaque: keep the latest.",
        pattern=f"^{LSN_PATTERN}$",
    )
}
_TOKEN_PARAMETER = {
    "name": CONSISTENCY_HEADER,
    "in": "header",
    "required": False,
    **_header(
        "A write's `Consistency-Token`, sent back: this read sees that write or a later state.",
        pattern=f"^{LSN_PATTERN}$",
    ),
}
_TOKEN_400 = f"`{CONSISTENCY_HEADER}` is not a write's token, or is sent twice."


def _document_consistency(path: str, method: str, operation: dict[str, Any]) -> None:
    """A write's 2xx carries the token; a read of the catalog takes it (a 400 when malformed)."""
    responses = operation["responses"]
    if method in ("post", "put", "patch", "delete"):
        for status, response in responses.items():
            if int(status) < 300:
                response.setdefault("headers", {}).update(_TOKEN_HEADER)
    elif method == "get" and path.startswith(_CATALOG_PATHS):
        operation.setdefault("parameters", []).append(dict(_TOKEN_PARAMETER))
        if "400" in responses:
            responses["400"]["description"] += f" Or {_TOKEN_400}"
        else:
            responses["400"] = {"description": f"{HTTPStatus(400).phrase}. {_TOKEN_400}"}
            operation["responses"] = dict(sorted(responses.items(), key=lambda item: int(item[0])))


def _links(resource: str, *operations: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Links from the answers that hold one `resource` (create, read, patch) to reading it and
    to `operations` on its id and ETag."""
    by_id = {f"{resource}_id": "$response.body#/id"}
    with_etag = {**by_id, "header.If-Match": "$response.header.ETag"}
    links = {f"Read{resource.title()}": {"operationId": f"read_{resource}", "parameters": by_id}}
    for operation in operations:
        name = operation.title().replace("_", "")
        links[name] = {"operationId": operation, "parameters": with_etag}
    answers = (("create", "201"), ("read", "200"), ("patch", "200"))
    return {(f"{verb}_{resource}", status): links for verb, status in answers}


# (operationId, status) -> links: the flows a stateful client (or fuzzer) can follow.
_LINKS = {
    **_links("product", "replace_product", "patch_product", "change_stock", "delete_product"),
    **_links("category", "replace_category", "patch_category", "delete_category"),
    ("create_products", "201"): {
        "ReadFirstProduct": {
            "operationId": "read_product",
            "parameters": {"product_id": "$response.body#/0/id"},
        }
    },
}


def problem_responses(
    *statuses: int, resource: str = "resource", why: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for the error statuses an operation on `resource` can answer;
    `why` replaces the generic reason of a status with the operation's own."""
    reasons = {**_WHY, **(why or {})}
    return {
        status: {
            "description": f"{HTTPStatus(status).phrase}. "
            + reasons[status].format(resource=resource),
            "model": Problem,
            **({"headers": _ERROR_HEADERS[status]} if status in _ERROR_HEADERS else {}),
        }
        for status in statuses
    }


def list_responses(resources: str) -> dict[int | str, dict[str, Any]]:
    """A listing's answers: one page of `resources` (plural), or a 422."""
    return {
        200: {"description": f"One page of {resources}.", "headers": LIST_HEADERS},
        **problem_responses(422, 503),
    }


def create_responses(why: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    return {
        201: {"description": "Created.", "headers": {**LOCATION_HEADER, **ETAG_HEADER}},
        **problem_responses(400, 401, 409, 413, 415, 422, 503, why=why),
    }


def read_responses(resource: str) -> dict[int | str, dict[str, Any]]:
    why = {400: "`If-None-Match` names more than 100 entity tags."}
    return {
        200: {"description": f"The {resource}.", "headers": ETAG_HEADER},
        304: {
            "description": "Not Modified: `If-None-Match` names the current ETag.",
            "headers": ETAG_HEADER,
        },
        **problem_responses(400, 404, 422, 503, resource=resource, why=why),
    }


def update_responses(resource: str, why: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    why = {400: "The body is not valid JSON, or `If-Match` names over 100 tags.", **why}
    return {
        200: {"description": f"The {resource} after the change.", "headers": ETAG_HEADER},
        **problem_responses(
            400, 401, 404, 409, 412, 413, 415, 422, 503, resource=resource, why=why
        ),
    }


def delete_responses(
    resource: str, *statuses: int, why: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """A delete's answers; `statuses` are those beyond the usual (a 409 of its own rule)."""
    why = {400: "`If-Match` names more than 100 entity tags.", **(why or {})}
    return {
        204: {"description": "Deleted."},
        **problem_responses(400, 401, 404, *statuses, 412, 422, 503, resource=resource, why=why),
    }


def build_openapi(app: FastAPI) -> dict[str, Any]:
    generated = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    # A resource's schema is called by its name (`Product`, not `ProductRead`), in every $ref.
    document: dict[str, Any] = json.loads(
        re.sub(r'(/schemas/\w+)Read"', r'\1"', json.dumps(generated))
    )
    schemas = document["components"]["schemas"]
    for name in [name for name in schemas if name.endswith("Read")]:
        schemas[name.removesuffix("Read")] = schemas.pop(name)
    if not get_settings().api_keys:
        # Writes are open: the document must not claim that they need a key.
        document["components"].pop("securitySchemes", None)
        for path_item in document["paths"].values():
            for operation in path_item.values():
                operation.pop("security", None)
                operation["responses"].pop("401", None)
    replica = bool(get_settings().database_read_url)
    for path, path_item in document["paths"].items():
        for method, operation in path_item.items():
            if replica:
                _document_consistency(path, method, operation)
            # An optional parameter is one left out, not one sent as null (a query string or a
            # header holds no null): its schema is the value's alone, as Swagger UI shows it.
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                kinds = schema.get("anyOf", [])
                if len(kinds) == 2 and {"type": "null"} in kinds:
                    del schema["anyOf"]
                    schema.update(next(kind for kind in kinds if kind != {"type": "null"}))
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
            _document_idempotency(operation)
            body = operation.get("requestBody", {}).get("content", {})
            if method == "patch" and "application/json" in body:
                body["application/merge-patch+json"] = body["application/json"]
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve `build_openapi(app)` at /openapi.json, built once on first use (FastAPI's recipe)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
