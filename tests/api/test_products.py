"""The CRUD contract of /products, on the happy paths and the plain error paths."""

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

MakeProduct = Callable[..., dict[str, Any]]
PROBLEM = "application/problem+json"


def test_create_product_returns_201_with_location_etag_and_body(client: TestClient) -> None:
    body = {"sku": "TEE-1", "name": "Tee", "description": "Cotton", "price": 19.99, "quantity": 3}

    response = client.post("/products", json=body)

    assert response.status_code == 201
    created = response.json()
    assert response.headers["location"] == f"/products/{created['id']}"
    assert response.headers["etag"] == '"1"'
    assert {key: created[key] for key in body} == body
    assert created["version"] == 1
    assert isinstance(created["id"], int)


def test_create_product_defaults_quantity_to_zero_and_optional_fields_to_null(
    client: TestClient,
) -> None:
    response = client.post("/products", json={"name": "Tee", "price": 5})

    assert response.status_code == 201
    created = response.json()
    assert created["quantity"] == 0
    assert created["sku"] is None
    assert created["description"] is None


def test_create_product_writes_timestamps_as_rfc3339_utc(client: TestClient) -> None:
    created = client.post("/products", json={"name": "Tee", "price": 5}).json()

    for field in ("created_at", "updated_at"):
        assert created[field].endswith("Z")
        assert datetime.fromisoformat(created[field]).utcoffset() is not None


@pytest.mark.parametrize("price", [19.99, 0.01, 0.1, 1234.5, 99999999.99, 7])
def test_price_is_written_back_as_the_same_json_number(client: TestClient, price: float) -> None:
    response = client.post("/products", json={"name": "Tee", "price": price})

    assert response.status_code == 201
    exact = Decimal(str(price))
    assert json.loads(response.text, parse_float=Decimal)["price"] == exact
    reread = client.get(response.headers["location"])
    assert json.loads(reread.text, parse_float=Decimal)["price"] == exact


def test_create_trims_surrounding_whitespace_of_name(client: TestClient) -> None:
    response = client.post("/products", json={"name": "  Tee  ", "price": 5})

    assert response.status_code == 201
    assert response.json()["name"] == "Tee"


def test_create_ignores_read_only_fields(client: TestClient) -> None:
    body = {
        "name": "Tee",
        "price": 5,
        "id": 999,
        "version": 42,
        "created_at": "2000-01-01T00:00:00Z",
        "updated_at": "2000-01-01T00:00:00Z",
    }

    response = client.post("/products", json=body)

    assert response.status_code == 201
    created = response.json()
    assert created["id"] != 999
    assert created["version"] == 1
    assert not created["created_at"].startswith("2000")


def test_create_duplicate_sku_returns_409_problem(
    client: TestClient, make_product: MakeProduct
) -> None:
    make_product(sku="DUP-1")

    response = client.post("/products", json={"name": "Other", "price": 1, "sku": "DUP-1"})

    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["status"] == 409
    assert "DUP-1" in response.json()["detail"]
    assert client.get("/products").headers["x-total-count"] == "1"


def test_products_without_sku_do_not_conflict(
    client: TestClient, make_product: MakeProduct
) -> None:
    make_product()
    make_product()

    assert client.get("/products").headers["x-total-count"] == "2"


def test_read_product_returns_it_with_etag(client: TestClient, make_product: MakeProduct) -> None:
    product = make_product(name="Mug")

    response = client.get(f"/products/{product['id']}")

    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert response.json() == product


def test_read_missing_product_returns_404_problem(client: TestClient) -> None:
    response = client.get("/products/123456")

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == 404
    assert problem["instance"] == "/products/123456"
    assert set(problem) >= {"type", "title", "status", "detail", "instance"}


@pytest.mark.parametrize(
    ("product_id", "status"),
    [
        ("0", 422),
        ("2147483648", 422),
        ("99999999999999999999", 422),
        # More digits than Python converts to an int (4,300): still an invalid id, not a 500.
        pytest.param("9" * 5000, 422, id="5000 digits"),
        ("-1", 404),
        ("abc", 404),
    ],
)
def test_read_product_with_id_outside_int4_is_4xx_not_500(
    client: TestClient, product_id: str, status: int
) -> None:
    # Digits that are out of range are an invalid id (422 naming it); anything else is no
    # product path (404 saying so): docs/api.md, "Product ids".
    response = client.get(f"/products/{product_id}")

    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    if status == 422:
        assert response.json()["errors"][0]["loc"] == ["path", "product_id"]
    else:
        assert response.json()["detail"] == f"Nothing is at /products/{product_id}"


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_other_methods_on_bulk_are_405_allowing_post(client: TestClient, method: str) -> None:
    response = client.request(method, "/products/bulk")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_read_with_matching_if_none_match_returns_304(
    client: TestClient, make_product: MakeProduct
) -> None:
    product = make_product()

    response = client.get(f"/products/{product['id']}", headers={"If-None-Match": '"1"'})

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == '"1"'


def test_read_with_stale_if_none_match_returns_200(
    client: TestClient, make_product: MakeProduct
) -> None:
    product = make_product()

    response = client.get(f"/products/{product['id']}", headers={"If-None-Match": '"7"'})

    assert response.status_code == 200


def test_list_products_returns_array_with_total_count(
    client: TestClient, make_product: MakeProduct
) -> None:
    created = [make_product() for _ in range(3)]

    response = client.get("/products")

    assert response.status_code == 200
    assert response.headers["x-total-count"] == "3"
    assert response.json() == created


def test_list_products_pages_with_skip_and_limit(
    client: TestClient, make_product: MakeProduct
) -> None:
    created = [make_product() for _ in range(5)]

    response = client.get("/products", params={"skip": 1, "limit": 2})

    assert response.json() == created[1:3]
    assert response.headers["x-total-count"] == "5"


def test_list_products_on_empty_catalog_is_empty_array(client: TestClient) -> None:
    response = client.get("/products")

    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["x-total-count"] == "0"


@pytest.mark.parametrize(
    "params",
    [
        {"skip": -1},
        {"skip": 2**31},
        {"skip": "ten"},
        {"limit": 0},
        {"limit": 1001},
        {"limit": -5},
        {"limit": "many"},
    ],
)
def test_list_products_rejects_out_of_range_paging(
    client: TestClient, params: dict[str, Any]
) -> None:
    response = client.get("/products", params=params)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["loc"][0] == "query"


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_update_changes_only_the_fields_sent(
    client: TestClient, make_product: MakeProduct, method: str
) -> None:
    product = make_product(sku="A-1", name="Mug", description="Blue", price=4.5, quantity=2)

    response = client.request(method, f"/products/{product['id']}", json={"price": 5.25})

    assert response.status_code == 200
    updated = response.json()
    assert updated["price"] == 5.25
    assert updated["version"] == 2
    assert response.headers["etag"] == '"2"'
    unchanged = ("sku", "name", "description", "quantity", "created_at", "id")
    assert {key: updated[key] for key in unchanged} == {key: product[key] for key in unchanged}
    assert client.get(f"/products/{product['id']}").json() == updated


def test_patch_accepts_merge_patch_content_type(
    client: TestClient, make_product: MakeProduct
) -> None:
    product = make_product()

    response = client.patch(
        f"/products/{product['id']}",
        content=b'{"quantity": 11}',
        headers={"Content-Type": "application/merge-patch+json"},
    )

    assert response.status_code == 200
    assert response.json()["quantity"] == 11


@pytest.mark.parametrize("field", ["sku", "description"])
def test_update_with_null_clears_optional_field(
    client: TestClient, make_product: MakeProduct, field: str
) -> None:
    product = make_product(sku="CLR-1", description="Soon gone")

    response = client.patch(f"/products/{product['id']}", json={field: None})

    assert response.status_code == 200
    assert response.json()[field] is None


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize("field", ["name", "price", "quantity"])
def test_update_with_null_for_required_field_is_422_and_changes_nothing(
    client: TestClient, make_product: MakeProduct, method: str, field: str
) -> None:
    product = make_product()

    response = client.request(method, f"/products/{product['id']}", json={field: None})

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", field]
    assert client.get(f"/products/{product['id']}").json() == product


def test_update_with_empty_body_changes_nothing(
    client: TestClient, make_product: MakeProduct
) -> None:
    product = make_product()

    response = client.patch(f"/products/{product['id']}", json={})

    assert response.status_code == 200
    assert response.json() == product


def test_update_to_an_existing_sku_is_409_and_changes_nothing(
    client: TestClient, make_product: MakeProduct
) -> None:
    make_product(sku="TAKEN")
    product = make_product(sku="MINE")

    response = client.patch(f"/products/{product['id']}", json={"sku": "TAKEN", "price": 1})

    assert response.status_code == 409
    assert client.get(f"/products/{product['id']}").json() == product


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_write_to_missing_product_is_404(client: TestClient, method: str) -> None:
    response = client.request(method, "/products/4242", json={"price": 1})

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


def test_delete_product_returns_204_and_it_is_gone(
    client: TestClient, make_product: MakeProduct
) -> None:
    product = make_product()

    response = client.delete(f"/products/{product['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"/products/{product['id']}").status_code == 404
    assert client.delete(f"/products/{product['id']}").status_code == 404


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_write_with_stale_if_match_is_412_and_changes_nothing(
    client: TestClient, make_product: MakeProduct, method: str
) -> None:
    product = make_product()
    client.patch(f"/products/{product['id']}", json={"quantity": 1})
    current = client.get(f"/products/{product['id']}").json()

    response = client.request(
        method, f"/products/{product['id']}", json={"quantity": 9}, headers={"If-Match": '"1"'}
    )

    assert response.status_code == 412
    assert response.headers["content-type"] == PROBLEM
    assert client.get(f"/products/{product['id']}").json() == current


@pytest.mark.parametrize("if_match", ['"1"', "*", '"5", "1"'])
def test_write_with_matching_if_match_succeeds(
    client: TestClient, make_product: MakeProduct, if_match: str
) -> None:
    product = make_product()

    response = client.patch(
        f"/products/{product['id']}", json={"quantity": 9}, headers={"If-Match": if_match}
    )

    assert response.status_code == 200
    assert response.headers["etag"] == '"2"'


def test_guide_template_client_flow_keeps_working(client: TestClient) -> None:
    """A client written against the guide's template: name, description, price, quantity."""
    created = client.post(
        "/products",
        json={"name": "Laptop", "description": "14 inch", "price": 999.99, "quantity": 10},
    )
    assert created.status_code == 201
    product_id = created.json()["id"]

    assert client.get(f"/products/{product_id}").json()["name"] == "Laptop"
    assert any(item["id"] == product_id for item in client.get("/products").json())

    updated = client.put(f"/products/{product_id}", json={"price": 899.99, "quantity": 8})
    assert updated.status_code == 200
    assert (updated.json()["price"], updated.json()["quantity"]) == (899.99, 8)

    assert client.delete(f"/products/{product_id}").status_code == 204
    assert client.get(f"/products/{product_id}").status_code == 404
