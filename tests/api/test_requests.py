"""Request hygiene: JSON bodies only, bounded bodies, request ids, access logs and metrics."""

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, text

from api.logs import JsonFormatter
from api.problems import install_problem_handlers

ONE_MIB = 1024 * 1024


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml", "multipart/form-data"],
)
def test_non_json_body_is_415_problem(client: TestClient, content_type: str) -> None:
    response = client.post(
        "/products",
        content=b'{"name": "Tee", "price": 5}',
        headers={"Content-Type": content_type},
    )

    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert client.get("/products").headers["x-total-count"] == "0"


def test_body_without_content_type_is_415(client: TestClient) -> None:
    response = client.post(
        "/products", content=b'{"name": "Tee", "price": 5}', headers={"Content-Type": ""}
    )

    assert response.status_code == 415


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/merge-patch+json"]
)
def test_json_media_types_with_parameters_or_suffix_are_accepted(
    client: TestClient, content_type: str
) -> None:
    response = client.post(
        "/products", content=b'{"name": "Tee", "price": 5}', headers={"Content-Type": content_type}
    )

    assert response.status_code == 201


def test_body_over_one_mib_is_413_problem(client: TestClient) -> None:
    body = json.dumps({"name": "Tee", "price": 5, "description": "x" * ONE_MIB}).encode()

    response = client.post("/products", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert client.get("/products").headers["x-total-count"] == "0"


def test_chunked_body_over_one_mib_is_413_problem(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "Tee", "price": 5, "description": "'
        for _ in range(2 * 1024):
            yield b"x" * 1024
        yield b'"}'

    response = client.post(
        "/products", content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    # The rest of the body is left unread: no further request may follow on this connection.
    assert response.headers["connection"] == "close"


@pytest.mark.parametrize(
    ("resource", "body"),
    [("products", {"name": "Kept", "price": 5}), ("categories", {"name": "Kept"})],
)
def test_a_delete_with_a_chunked_body_over_one_mib_is_413_and_deletes_nothing(
    client: TestClient, resource: str, body: dict[str, Any]
) -> None:
    created = client.post(f"/{resource}", json=body).json()

    def chunks() -> Iterator[bytes]:
        for _ in range(2 * 1024):
            yield b"x" * 1024

    response = client.request("DELETE", f"/{resource}/{created['id']}", content=chunks())

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert client.get(f"/{resource}/{created['id']}").status_code == 200


def test_a_delete_with_a_small_body_ignores_it(client: TestClient) -> None:
    created = client.post("/products", json={"name": "Gone", "price": 5}).json()

    response = client.request("DELETE", f"/products/{created['id']}", content=b"ignored")

    assert response.status_code == 204
    assert client.get(f"/products/{created['id']}").status_code == 404


def test_body_of_exactly_the_limit_is_not_413(client: TestClient) -> None:
    prefix = b'{"name": "Tee", "price": 5, "description": "'
    body = prefix + b"x" * (ONE_MIB - len(prefix) - 2) + b'"}'
    assert len(body) == ONE_MIB

    response = client.post("/products", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 422  # over 500 characters, but read and validated


@pytest.mark.parametrize("path", ["/health", "/products", "/products/999", "/nowhere"])
def test_every_response_has_a_generated_request_id(client: TestClient, path: str) -> None:
    response = client.get(path)

    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_a_sane_client_request_id_is_echoed(client: TestClient) -> None:
    request_id = "abc-123_XYZ.~!" + "z" * 114
    assert len(request_id) == 128

    response = client.get("/health", headers={"X-Request-ID": request_id})

    assert response.headers["x-request-id"] == request_id


@pytest.mark.parametrize(
    "request_id", [b"x" * 129, b"has space", b"tab\tinside", "ünïcode".encode(), b""], ids=repr
)
def test_an_insane_client_request_id_is_replaced(client: TestClient, request_id: bytes) -> None:
    response = client.get("/health", headers={b"X-Request-ID": request_id})

    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_one_access_log_line_per_request_with_route_template(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    product = client.post("/products", json={"name": "Tee", "price": 5}).json()

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="catalog.access"):
        response = client.get(f"/products/{product['id']}", headers={"X-Request-ID": "trace-42"})

    lines = [record for record in caplog.records if record.name == "catalog.access"]
    assert len(lines) == 1
    line: Any = lines[0]
    assert (line.method, line.route, line.status) == ("GET", "/products/{product_id}", 200)
    assert line.duration_ms >= 0
    assert line.request_id == "trace-42"
    assert response.headers["x-request-id"] == "trace-42"
    # The client's address, first on the line (TestClient's own is "testclient").
    assert line.client == "testclient"
    assert line.getMessage().startswith("testclient GET /products/{product_id} 200 ")


def test_unexpected_error_500_carries_the_request_id(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import crud.products

    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(crud.products, "get_product", explode)

    response = client.get("/products/1", headers={"X-Request-ID": "req-500"})

    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-500"
    assert response.headers["content-type"] == "application/problem+json"


def test_json_log_lines_carry_the_extras() -> None:
    record = logging.makeLogRecord(
        {
            "name": "catalog.access",
            "msg": "GET %s",
            "args": ("/x",),
            "levelno": 20,
            "levelname": "INFO",
            "route": "/x",
            "status": 200,
        }
    )
    record.request_id = "rid-1"

    entry = json.loads(JsonFormatter().format(record))

    assert entry["message"] == "GET /x"
    assert entry["request_id"] == "rid-1"
    assert (entry["route"], entry["status"], entry["level"]) == ("/x", 200, "info")


def test_metrics_count_requests_by_route_template_and_status(client: TestClient) -> None:
    product = client.post("/products", json={"name": "Tee", "price": 5}).json()
    client.get(f"/products/{product['id']}")
    client.get("/products/999999")

    metrics = client.get("/metrics")

    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    labels = 'method="GET",route="/products/{product_id}",status="200"'
    assert re.search(re.escape(f"catalog_http_requests_total{{{labels}}}") + " [1-9]", text)
    assert 'status="404"' in text
    assert "catalog_http_request_duration_seconds_bucket" in text
    assert "catalog_database_errors_total" in text


def test_metrics_count_every_request_once(client: TestClient) -> None:
    labels = {"method": "GET", "route": "/health", "status": "200"}

    def counted() -> tuple[float, float]:
        requests = REGISTRY.get_sample_value("catalog_http_requests_total", labels) or 0.0
        timed = REGISTRY.get_sample_value("catalog_http_request_duration_seconds_count", labels)
        return requests, timed or 0.0

    before = counted()
    for _ in range(3):
        client.get("/health")

    assert counted() == (before[0] + 3, before[1] + 3)


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("GET", "/openapi.json", "/openapi.json"),
        ("HEAD", "/openapi.json", "/openapi.json"),
        ("DELETE", "/openapi.json", "/openapi.json"),
        ("GET", "/docs", "/docs"),
        ("GET", "/redoc", "/redoc"),
        ("GET", "/static/docs/swagger-ui.css", "/static/docs/{path}"),
        ("GET", "/static/docs/redoc.standalone.js", "/static/docs/{path}"),
        ("GET", "/static/docs/no-such-file.js", "/static/docs/{path}"),
        ("GET", "/no/such/thing", "<unmatched>"),
        ("GET", "/products/not-an-id", "<unmatched>"),
    ],
)
def test_docs_and_static_files_are_logged_and_counted_by_route_template(
    client: TestClient, caplog: pytest.LogCaptureFixture, method: str, path: str, route: str
) -> None:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="catalog.access"):
        response = client.request(method, path)

    lines: list[Any] = [record for record in caplog.records if record.name == "catalog.access"]
    assert [line.route for line in lines] == [route]
    labels = {"method": method, "route": route, "status": str(response.status_code)}
    assert REGISTRY.get_sample_value("catalog_http_requests_total", labels)


def test_no_route_label_is_a_raw_path(client: TestClient) -> None:
    for path in ["/static/docs/swagger-ui.css", "/static/docs/favicon.png", "/no/such/thing"]:
        client.get(path)

    routes = {
        sample.labels["route"]
        for metric in REGISTRY.collect()
        if metric.name == "catalog_http_requests"
        for sample in metric.samples
    }
    assert {"/static/docs/{path}", "<unmatched>"} <= routes
    assert not routes & {
        "/static/docs/swagger-ui.css",
        "/static/docs/favicon.png",
        "/no/such/thing",
    }


def test_no_free_connection_within_pool_timeout_is_503(tmp_path: Path) -> None:
    pool = create_engine(
        f"sqlite:///{tmp_path / 'pool.db'}", pool_size=1, max_overflow=0, pool_timeout=0.2
    )
    probe = FastAPI()
    install_problem_handlers(probe)

    @probe.get("/needs-db")
    def needs_db() -> dict[str, str]:
        with pool.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {}

    with TestClient(probe) as test_client:
        assert test_client.get("/needs-db").status_code == 200
        with pool.connect():  # every connection is taken
            response = test_client.get("/needs-db")
    pool.dispose()

    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.headers["content-type"] == "application/problem+json"
