"""The OpenAPI document: valid, complete, and committed (openapi.json) so changes show in review."""

import json
import re
from typing import Any

import pytest
from openapi_spec_validator import validate

from api.openapi import build_openapi
from config import PROJECT_DIR, get_settings
from database.replica import format_lsn as format_token
from main import app

SNAPSHOT = PROJECT_DIR / "openapi.json"
DOCUMENT: dict[str, Any] = app.openapi()
OPERATIONS = [
    (path, method, operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
]
WRITES = [(p, m, o) for p, m, o in OPERATIONS if m in ("post", "put", "patch", "delete")]


def test_live_document_matches_the_committed_snapshot() -> None:
    committed = json.loads(SNAPSHOT.read_text(encoding="utf-8"))

    assert committed == DOCUMENT, (
        "The API changed: review the difference, then refresh the snapshot with `make openapi`."
    )


def test_document_is_valid_openapi() -> None:
    validate(DOCUMENT)


def test_operation_ids_are_unique_and_readable() -> None:
    ids = [operation["operationId"] for _, _, operation in OPERATIONS]

    assert len(ids) == len(set(ids))
    assert all(identifier.isidentifier() and "__" not in identifier for identifier in ids)
    assert {"create_product", "list_products", "read_product", "patch_product"} <= set(ids)


def test_every_operation_has_a_one_line_summary() -> None:
    for path, method, operation in OPERATIONS:
        assert operation["summary"] and "\n" not in operation["summary"], (path, method)


def test_named_schemas_exist() -> None:
    assert {"Product", "ProductCreate", "ProductUpdate", "StockChange", "Problem"} <= set(
        DOCUMENT["components"]["schemas"]
    )


def test_price_is_a_number_everywhere() -> None:
    for name in ("Product", "ProductCreate", "ProductUpdate"):
        assert DOCUMENT["components"]["schemas"][name]["properties"]["price"]["type"] == "number"


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=lambda x: str(x)[:30])
def test_every_error_is_a_problem_and_every_response_has_a_request_id(
    path: str, method: str, operation: dict[str, Any]
) -> None:
    for status, response in operation["responses"].items():
        assert "X-Request-ID" in response["headers"], (path, method, status)
        if int(status) >= 400:
            assert response["content"] == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }, (path, method, status)


def test_with_api_keys_every_write_documents_auth_and_its_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "api_keys", ["a-key"])
    document = build_openapi(app)

    assert set(document["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "get":
                assert "security" not in operation, path  # reads stay public
                continue
            assert operation["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
            assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]


def test_with_a_replica_writes_give_a_consistency_token_and_catalog_reads_take_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "database_read_url", "postgresql://replica/catalog")
    document = build_openapi(app)

    validate(document)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            headers = [p for p in operation.get("parameters", []) if p["in"] == "header"]
            token = next((p for p in headers if p["name"] == "Consistency-Token"), None)
            reads_the_catalog = method == "get" and path.startswith(("/products", "/categories"))
            assert (token is not None) == reads_the_catalog, (path, method)
            if token is not None:
                # What the service hands out fits what the document asks for.
                assert re.fullmatch(token["schema"]["pattern"], format_token(0x16B374D848))
                refused = operation["responses"]["400"]
                assert "Consistency-Token" in refused["description"], path
                assert "application/problem+json" in refused["content"], path
            for status, response in operation["responses"].items():
                gives_one = method != "get" and int(status) < 300
                assert ("Consistency-Token" in response["headers"]) == gives_one, (path, status)


def test_without_a_replica_no_operation_mentions_a_consistency_token() -> None:
    assert not get_settings().database_read_url

    assert "Consistency-Token" not in json.dumps(DOCUMENT)


def test_without_api_keys_no_write_claims_to_need_one() -> None:
    assert get_settings().api_keys == []

    assert "securitySchemes" not in DOCUMENT["components"]
    for path, method, operation in WRITES:
        assert "security" not in operation, (path, method)
        assert "401" not in operation["responses"], (path, method)


@pytest.mark.parametrize(("path", "method", "operation"), WRITES, ids=lambda x: str(x)[:30])
def test_every_write_with_a_body_documents_its_refusals(
    path: str, method: str, operation: dict[str, Any]
) -> None:
    if "requestBody" in operation:
        assert {"400", "413", "415", "422"} <= set(operation["responses"]), (path, method)


def test_the_statuses_and_headers_of_the_product_operations() -> None:
    paths = DOCUMENT["paths"]
    create = paths["/products"]["post"]["responses"]
    assert {"201", "400", "409", "413", "415", "422", "503"} == set(create)
    assert {"Location", "ETag"} <= set(create["201"]["headers"])
    listing = paths["/products"]["get"]["responses"]
    assert listing["200"]["content"]["application/json"]["schema"]["type"] == "array"
    assert {"X-Total-Count", "Link"} <= set(listing["200"]["headers"])
    read = paths["/products/{product_id}"]["get"]["responses"]
    assert {"200", "304", "400", "404", "422", "503"} == set(read)
    patch = paths["/products/{product_id}"]["patch"]
    assert {"409", "412"} <= set(patch["responses"])
    assert set(patch["requestBody"]["content"]) == {
        "application/json",
        "application/merge-patch+json",
    }
    assert "Retry-After" in create["503"]["headers"]


def test_request_bodies_have_examples() -> None:
    for name in ("ProductCreate", "ProductUpdate", "StockChange"):
        assert DOCUMENT["components"]["schemas"][name]["examples"], name


def test_docs_page_describes_the_service() -> None:
    assert "If-Match" in DOCUMENT["info"]["description"]
    assert DOCUMENT["info"]["summary"]


def test_paths_and_operations_are_in_the_order_the_routes_are_declared() -> None:
    # The API's resource first, then the service's own endpoints (main.py).
    assert list(DOCUMENT["paths"])[-4:] == ["/", "/health", "/health/ready", "/metrics"]
    product_paths = [path for path in DOCUMENT["paths"] if path.startswith("/products")]
    assert product_paths == [
        "/products",
        "/products/bulk",
        "/products/{product_id}",
        "/products/{product_id}/stock",
    ]
    assert list(DOCUMENT["paths"]["/products/{product_id}"]) == ["get", "put", "patch", "delete"]
    assert list(DOCUMENT["paths"]["/products"]) == ["get", "post"]


def test_categories_have_named_schemas_readable_operation_ids_and_their_statuses() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    assert {"Category", "CategoryCreate", "CategoryUpdate", "CategorySummary"} <= set(schemas)
    assert "CategoryRead" not in schemas
    assert {
        "create_category",
        "list_categories",
        "read_category",
        "replace_category",
        "patch_category",
        "delete_category",
    } <= {operation["operationId"] for _, _, operation in OPERATIONS}
    assert "default" not in schemas["CategoryUpdate"]["properties"]["name"]
    paths = DOCUMENT["paths"]
    listing = paths["/categories"]["get"]
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Category"},
        "title": "Response List Categories",
    }
    assert {"X-Total-Count", "Link"} <= set(listing["responses"]["200"]["headers"])
    assert {"q", "sort", "skip", "limit", "cursor"} <= {p["name"] for p in listing["parameters"]}
    assert {"201", "409", "422"} <= set(paths["/categories"]["post"]["responses"])
    assert {"Location", "ETag"} <= set(paths["/categories"]["post"]["responses"]["201"]["headers"])
    one = paths["/categories/{category_id}"]
    assert {"200", "304", "404"} <= set(one["get"]["responses"])
    assert {"409", "412"} <= set(one["patch"]["responses"])
    assert "products still name" in one["delete"]["responses"]["409"]["description"]
    assert one["patch"]["responses"]["200"]["links"]["DeleteCategory"]["operationId"] == (
        "delete_category"
    )


def test_products_document_category_id_and_expand() -> None:
    product = DOCUMENT["components"]["schemas"]["Product"]
    assert "category_id" in product["required"]
    assert "category" in product["properties"]
    assert "category" not in product["required"]  # only with expand=category
    for name in ("ProductCreate", "ProductUpdate"):
        assert "category_id" in DOCUMENT["components"]["schemas"][name]["properties"]
    paths = DOCUMENT["paths"]
    listing = {p["name"] for p in paths["/products"]["get"]["parameters"]}
    assert {"category_id", "expand"} <= listing
    assert "expand" in {p["name"] for p in paths["/products/{product_id}"]["get"]["parameters"]}


def test_optional_parameters_are_their_values_alone_and_resources_have_examples() -> None:
    document = app.openapi()

    parameters = [
        parameter
        for path_item in document["paths"].values()
        for operation in path_item.values()
        for parameter in operation.get("parameters", [])
    ]
    assert parameters
    assert not [p["name"] for p in parameters if "anyOf" in p["schema"]]  # no `| null`
    schemas = document["components"]["schemas"]
    for name in ("Product", "Category"):
        example = schemas[name]["examples"][0]
        assert set(example) == set(schemas[name]["properties"]) - {"category"}
        assert example["created_at"].endswith("Z")
