"""POST /products/{id}/stock: atomic `quantity += delta`, never below 0."""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

MakeProduct = Callable[..., dict[str, Any]]


def test_stock_adds_delta_and_bumps_version(client: TestClient, make_product: MakeProduct) -> None:
    product = make_product(quantity=5)

    response = client.post(f"/products/{product['id']}/stock", json={"delta": 3})

    assert response.status_code == 200
    assert response.json()["quantity"] == 8
    assert response.json()["version"] == 2
    assert response.headers["etag"] == '"2"'


def test_stock_can_take_the_quantity_to_exactly_zero(
    client: TestClient, make_product: MakeProduct
) -> None:
    product = make_product(quantity=5)

    response = client.post(f"/products/{product['id']}/stock", json={"delta": -5})

    assert response.status_code == 200
    assert response.json()["quantity"] == 0


def test_stock_below_zero_is_409_with_current_quantity_and_changes_nothing(
    client: TestClient, make_product: MakeProduct
) -> None:
    product = make_product(quantity=2)

    response = client.post(f"/products/{product['id']}/stock", json={"delta": -3})

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == "Insufficient stock"
    assert problem["quantity"] == 2
    assert client.get(f"/products/{product['id']}").json() == product


def test_stock_above_int4_is_409_and_changes_nothing(
    client: TestClient, make_product: MakeProduct
) -> None:
    product = make_product(quantity=2_147_483_000)

    response = client.post(f"/products/{product['id']}/stock", json={"delta": 1000})

    assert response.status_code == 409
    assert client.get(f"/products/{product['id']}").json() == product


@pytest.mark.parametrize(
    "body",
    [
        {"delta": 0},
        {"delta": 2_147_483_648},
        {"delta": -2_147_483_649},
        {"delta": 1.5},
        {"delta": "1"},
        {"delta": None},
        {"delta": True},
        {},
        {"delta": 1, "note": "extra"},
        [],
    ],
)
def test_stock_with_invalid_delta_is_422_and_changes_nothing(
    client: TestClient, make_product: MakeProduct, body: Any
) -> None:
    product = make_product(quantity=4)

    response = client.post(f"/products/{product['id']}/stock", json=body)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert client.get(f"/products/{product['id']}").json() == product


def test_stock_on_missing_product_is_404(client: TestClient) -> None:
    response = client.post("/products/777/stock", json={"delta": 1})

    assert response.status_code == 404


def test_stock_with_stale_if_match_is_412_and_changes_nothing(
    client: TestClient, make_product: MakeProduct
) -> None:
    product = make_product(quantity=4)

    response = client.post(
        f"/products/{product['id']}/stock", json={"delta": 1}, headers={"If-Match": '"9"'}
    )

    assert response.status_code == 412
    assert client.get(f"/products/{product['id']}").json() == product


def test_stock_with_current_if_match_succeeds(
    client: TestClient, make_product: MakeProduct
) -> None:
    product = make_product(quantity=4)

    response = client.post(
        f"/products/{product['id']}/stock", json={"delta": -1}, headers={"If-Match": '"1"'}
    )

    assert response.status_code == 200
    assert response.json()["quantity"] == 3
