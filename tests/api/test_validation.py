"""Hostile and out-of-range input: always a 4xx problem, never a 500, and nothing changes."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

MakeProduct = Callable[..., dict[str, Any]]
VALID = {"name": "Widget", "price": 9.99}


def _with(**fields: Any) -> dict[str, Any]:
    return {**VALID, **fields}


def _without(field: str) -> dict[str, Any]:
    return {key: value for key, value in VALID.items() if key != field}


INVALID_FIELDS: list[tuple[str, Any]] = [
    ("name", ""),
    ("name", "   "),
    ("name", "n" * 101),
    ("name", "a\x00b"),
    ("name", "bell\x07"),
    ("name", "line\nbreak"),
    ("name", "del\x7f"),
    ("name", "c1\x85"),
    ("name", 123),
    ("name", ["Widget"]),
    ("name", {"text": "Widget"}),
    ("price", 0),
    ("price", -0.01),
    ("price", -1),
    ("price", 0.001),
    ("price", 19.999),
    ("price", 100000000),
    ("price", 99999999.991),
    ("price", 1e20),
    ("price", "19.99"),
    ("price", True),
    ("price", [1]),
    ("quantity", -1),
    ("quantity", 2147483648),
    ("quantity", 10**30),
    ("quantity", 1.5),
    ("quantity", 1e20),
    ("quantity", "5"),
    ("quantity", True),
    ("sku", ""),
    ("sku", "s" * 65),
    ("sku", "has space"),
    ("sku", "ümlaut"),
    ("sku", "semi;colon"),
    ("sku", "nul\x00"),
    ("sku", 42),
    ("description", "d" * 501),
    ("description", "nul\x00byte"),
    ("description", "lone \ud800 surrogate"),
    ("name", "lone \udfff surrogate"),
    ("description", 5),
    ("colour", "red"),
]

VALID_BOUNDARIES: list[tuple[str, Any]] = [
    ("name", "n" * 100),
    ("name", "x"),
    ("name", "Ünïcödé ✓"),
    ("name", "emoji 🚀 (a surrogate pair in JSON)"),
    ("price", 0.01),
    ("price", 99999999.99),
    ("price", 100),
    ("quantity", 0),
    ("quantity", 2147483647),
    ("quantity", 2.0),  # JSON (and JSON Schema) do not tell 2.0 from 2
    ("sku", "s" * 64),
    ("sku", "A-z_0.9"),
    ("description", "d" * 500),
    ("description", "tabs\tand\nnewlines are fine here"),
]

# Raw bodies: not JSON, JSON that is not an object, and JSON numbers Python parses specially.
RAW_BODIES: list[tuple[bytes, int]] = [
    (b'{"name": "Widget", "price":', 400),
    (b"{name: 'Widget'}", 400),
    (b'{"name": "Widget", "price": 9.99,}', 400),
    (b"\xff\xfe\x00", 400),
    (b'{"name": "Widget", "price": NaN}', 422),
    (b'{"name": "Widget", "price": Infinity}', 422),
    (b'{"name": "Widget", "price": -Infinity}', 422),
    (b'{"name": "Widget", "price": 1e400}', 422),
    (b"[]", 422),
    (b'"Widget"', 422),
    (b"42", 422),
    (b"null", 422),
]


def _send(client: TestClient, method: str, path: str, body: Any) -> Any:
    # json.dumps escapes to ASCII, so lone surrogates travel as JSON escapes ("\\ud800").
    return client.request(
        method, path, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )


def _assert_problem(response: Any, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(problem)
    assert problem["status"] == response.status_code
    return problem


@pytest.mark.parametrize(("field", "value"), INVALID_FIELDS)
def test_create_with_invalid_field_is_422_and_creates_nothing(
    client: TestClient, field: str, value: Any
) -> None:
    problem = _assert_problem(_send(client, "POST", "/products", _with(**{field: value})), 422)

    assert problem["errors"][0]["loc"] == ["body", field]
    assert client.get("/products").headers["x-total-count"] == "0"


@pytest.mark.parametrize(("field", "value"), VALID_BOUNDARIES)
def test_create_accepts_values_on_the_boundary(client: TestClient, field: str, value: Any) -> None:
    response = client.post("/products", json=_with(**{field: value}))

    assert response.status_code == 201, response.text
    assert response.json()[field] == value


@pytest.mark.parametrize("field", ["name", "price"])
def test_create_without_required_field_is_422(client: TestClient, field: str) -> None:
    problem = _assert_problem(client.post("/products", json=_without(field)), 422)

    assert problem["errors"][0]["loc"] == ["body", field]


@pytest.mark.parametrize("field", ["name", "price", "quantity"])
def test_create_with_null_required_field_is_422(client: TestClient, field: str) -> None:
    _assert_problem(client.post("/products", json=_with(**{field: None})), 422)


def test_unknown_field_error_names_the_field(client: TestClient) -> None:
    problem = _assert_problem(client.post("/products", json=_with(colour="red")), 422)

    assert "colour" in problem["detail"]
    assert problem["errors"] == [
        {
            "loc": ["body", "colour"],
            "msg": "Extra inputs are not permitted",
            "type": "extra_forbidden",
        }
    ]


@pytest.mark.parametrize(("body", "status"), RAW_BODIES)
def test_create_with_malformed_body_is_4xx_problem(
    client: TestClient, body: bytes, status: int
) -> None:
    response = client.post("/products", content=body, headers={"Content-Type": "application/json"})

    _assert_problem(response, status)
    assert client.get("/products").headers["x-total-count"] == "0"


def test_create_with_empty_body_is_422(client: TestClient) -> None:
    response = client.post("/products", headers={"Content-Type": "application/json"})

    _assert_problem(response, 422)


@pytest.mark.parametrize(("field", "value"), INVALID_FIELDS)
def test_patch_with_invalid_field_is_422_and_changes_nothing(
    client: TestClient, make_product: MakeProduct, field: str, value: Any
) -> None:
    product = make_product()

    response = _send(client, "PATCH", f"/products/{product['id']}", {field: value})

    _assert_problem(response, 422)
    assert client.get(f"/products/{product['id']}").json() == product


@pytest.mark.parametrize(("body", "status"), RAW_BODIES)
def test_put_with_malformed_body_is_4xx_and_changes_nothing(
    client: TestClient, make_product: MakeProduct, body: bytes, status: int
) -> None:
    product = make_product()

    response = client.put(
        f"/products/{product['id']}", content=body, headers={"Content-Type": "application/json"}
    )

    _assert_problem(response, status, 422)
    assert client.get(f"/products/{product['id']}").json() == product
