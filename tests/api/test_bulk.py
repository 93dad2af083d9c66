"""POST /products/bulk: 1 to 1000 products, all created in one transaction or none."""

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

MakeProduct = Callable[..., dict[str, Any]]


def _items(count: int, **fields: Any) -> list[dict[str, Any]]:
    return [
        {"name": f"Bulk {i}", "price": 1.25, "sku": f"BULK-{i}", **fields} for i in range(count)
    ]


def _total(client: TestClient) -> int:
    return int(client.get("/products").headers["x-total-count"])


def test_bulk_creates_all_in_request_order(client: TestClient) -> None:
    items = _items(1000)

    response = client.post("/products/bulk", json=items)

    assert response.status_code == 201
    created = response.json()
    assert [product["sku"] for product in created] == [item["sku"] for item in items]
    assert len({product["id"] for product in created}) == 1000
    assert all(product["version"] == 1 for product in created)
    assert _total(client) == 1000
    assert client.get(f"/products/{created[500]['id']}").json() == created[500]


def test_bulk_with_invalid_item_999_is_422_naming_it_and_creates_nothing(
    client: TestClient,
) -> None:
    items = _items(1000)
    items[999]["price"] = -1

    response = client.post("/products/bulk", json=items)

    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["errors"]] == [["body", 999, "price"]]
    assert _total(client) == 0


def test_bulk_with_a_sku_repeated_inside_is_409_naming_both_and_creates_nothing(
    client: TestClient,
) -> None:
    items = _items(10)
    items[7]["sku"] = items[3]["sku"]

    response = client.post("/products/bulk", json=items)

    assert response.status_code == 409
    problem = response.json()
    assert [error["loc"] for error in problem["errors"]] == [["body", 3, "sku"], ["body", 7, "sku"]]
    assert "3, 7" in problem["detail"]
    assert _total(client) == 0


def test_bulk_with_an_existing_sku_is_409_naming_it_and_creates_nothing(
    client: TestClient, make_product: MakeProduct
) -> None:
    make_product(sku="BULK-4")

    response = client.post("/products/bulk", json=_items(6))

    assert response.status_code == 409
    assert [error["loc"] for error in response.json()["errors"]] == [["body", 4, "sku"]]
    assert _total(client) == 1


def test_bulk_items_without_sku_never_conflict(client: TestClient) -> None:
    response = client.post("/products/bulk", json=[{"name": "A", "price": 1}] * 3)

    assert response.status_code == 201
    assert _total(client) == 3


def test_bulk_of_zero_or_1001_items_is_422(client: TestClient) -> None:
    assert client.post("/products/bulk", json=[]).status_code == 422
    assert client.post("/products/bulk", json=_items(1001)).status_code == 422
    assert _total(client) == 0


def test_bulk_body_must_be_an_array(client: TestClient) -> None:
    response = client.post("/products/bulk", json={"name": "A", "price": 1})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
