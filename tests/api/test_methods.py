"""Routing conventions (api/routing.py): HEAD wherever GET (RFC 9110 §9.3.2), a 405's `Allow`
naming every method, and a trailing slash answered as the path without it (no redirect)."""

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from main import app
from tests.asgi import sent_by_the_app

MakeProduct = Callable[..., dict[str, Any]]


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A response's headers but its request id (one per request)."""
    return {name: value for name, value in headers.items() if name != "x-request-id"}


def _assert_head_is_get_without_body(client: TestClient, path: str, **headers: str) -> None:
    get = client.get(path, headers=headers)
    head = client.head(path, headers=headers)

    assert head.status_code == get.status_code
    assert _headers(head.headers) == _headers(get.headers)
    assert head.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/health",
        "/products?sort=-price&limit=2",
        "/products/999999",  # a 404 problem
        "/no/such/thing",  # unmatched: a 404 too
        "/docs",
        "/redoc",
        "/openapi.json",
        "/static/docs/swagger-ui.css",
    ],
)
def test_head_answers_as_get_without_body(
    client: TestClient, make_product: MakeProduct, path: str
) -> None:
    make_product()
    make_product()

    _assert_head_is_get_without_body(client, path)


@pytest.mark.parametrize("path", ["/health", "/docs", "/openapi.json", "/no/such/thing"])
def test_head_sends_no_body_bytes(path: str) -> None:
    get, head = sent_by_the_app("GET", path), sent_by_the_app("HEAD", path)

    assert head[0]["status"] == get[0]["status"]
    bodies = [message["body"] for message in head if message["type"] == "http.response.body"]
    assert bodies and not any(bodies)
    assert any(message.get("body") for message in get)


def test_head_on_a_listing_keeps_its_count_and_length(
    client: TestClient, make_product: MakeProduct
) -> None:
    make_product()

    head = client.head("/products")

    assert head.status_code == 200
    assert head.headers["x-total-count"] == "1"
    assert int(head.headers["content-length"]) == len(client.get("/products").content) > 0
    assert head.content == b""


def test_head_on_a_product_is_its_get_with_etag_and_304(
    client: TestClient, make_product: MakeProduct
) -> None:
    product = make_product()
    path = f"/products/{product['id']}"
    etag = client.get(path).headers["etag"]

    _assert_head_is_get_without_body(client, path)
    _assert_head_is_get_without_body(client, path, **{"If-None-Match": etag})
    assert client.head(path, headers={"If-None-Match": etag}).status_code == 304
    assert client.head(path).headers["etag"] == etag


def test_every_documented_get_answers_head(client: TestClient) -> None:
    """No route opts in: a GET route added later (a `/categories`) answers HEAD as well."""
    paths = [path for path, item in app.openapi()["paths"].items() if "get" in item]
    assert len(paths) >= 5

    for template in paths:
        path = re.sub(r"\{[^}]+\}", "1", template)
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code, template
        assert head.content == b"", template


def test_head_is_not_documented() -> None:
    assert all("head" not in item for item in app.openapi()["paths"].values())


def test_head_on_a_post_only_path_is_405(client: TestClient) -> None:
    response = client.head("/products/bulk")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_head_is_logged_and_counted_as_head(
    client: TestClient, make_product: MakeProduct, caplog: pytest.LogCaptureFixture
) -> None:
    product = make_product()
    labels = {"method": "HEAD", "route": "/products/{product_id}", "status": "200"}
    before = REGISTRY.get_sample_value("catalog_http_requests_total", labels) or 0.0

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="catalog.access"):
        client.head(f"/products/{product['id']}")

    lines: list[Any] = [record for record in caplog.records if record.name == "catalog.access"]
    assert [(line.method, line.route, line.status) for line in lines] == [
        ("HEAD", "/products/{product_id}", 200)
    ]
    assert REGISTRY.get_sample_value("catalog_http_requests_total", labels) == before + 1


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/health", "GET, HEAD"),
        ("DELETE", "/", "GET, HEAD"),
        ("DELETE", "/metrics", "GET, HEAD"),
        ("DELETE", "/products", "GET, HEAD, POST"),
        ("POST", "/products/1", "DELETE, GET, HEAD, PATCH, PUT"),
        ("GET", "/products/1/stock", "POST"),
        ("DELETE", "/docs", "GET, HEAD"),
        ("POST", "/redoc", "GET, HEAD"),
        ("PUT", "/openapi.json", "GET, HEAD"),
        ("DELETE", "/static/docs/swagger-ui.css", "GET, HEAD"),
    ],
)
def test_405_allows_every_method_of_the_path(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path)

    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["status"] == 405


@pytest.mark.parametrize("path", ["/products/", "/products/{id}/"])
def test_trailing_slash_answers_directly_without_redirect(
    client: TestClient, make_product: MakeProduct, path: str
) -> None:
    product = make_product()

    response = client.get(path.format(id=product["id"]), follow_redirects=False)

    assert response.status_code == 200


def test_post_with_trailing_slash_creates_without_redirect(client: TestClient) -> None:
    response = client.post("/products/", json={"name": "Tee", "price": 5}, follow_redirects=False)

    assert response.status_code == 201


def test_head_on_categories_is_its_get_without_a_body(
    client: TestClient, make_category: Callable[..., dict[str, Any]]
) -> None:
    categories = [make_category(name="Shirts"), make_category(name="Mugs")]

    listing = client.head("/categories")
    one = client.head(f"/categories/{categories[0]['id']}")

    assert listing.status_code == 200
    assert listing.headers["x-total-count"] == "2"
    assert one.status_code == 200
    assert one.headers["etag"] == '"1"'
    assert listing.content == one.content == b""
