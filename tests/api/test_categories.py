"""The contract of /categories: the products' conventions on a second resource."""

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config import get_settings

MakeCategory = Callable[..., dict[str, Any]]
MakeProduct = Callable[..., dict[str, Any]]
PROBLEM = "application/problem+json"
LINK = re.compile(r'<([^>]+)>; rel="(\w+)"')


def _links(response: Any) -> dict[str, str]:
    return {rel: url for url, rel in LINK.findall(response.headers.get("link", ""))}


def test_create_category_returns_201_with_location_etag_and_body(client: TestClient) -> None:
    response = client.post("/categories", json={"name": "  Shoes ", "description": "All shoes"})

    assert response.status_code == 201
    created = response.json()
    assert response.headers["location"] == f"/categories/{created['id']}"
    assert response.headers["etag"] == '"1"'
    assert set(created) == {"id", "name", "description", "created_at", "updated_at", "version"}
    assert (created["name"], created["description"], created["version"]) == (
        "Shoes",
        "All shoes",
        1,
    )
    assert created["created_at"] == created["updated_at"]
    assert created["created_at"].endswith("Z")
    assert client.get(response.headers["location"]).json() == created


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": None}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "Tab\there"}, "name"),
        ({"name": "Shoes", "description": "x" * 501}, "description"),
        ({"name": "Shoes", "description": "nul\x00"}, "description"),
        ({"name": "Shoes", "colour": "red"}, "colour"),
    ],
)
def test_create_category_with_invalid_body_is_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    response = client.post("/categories", json=body)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert [error["loc"][-1] for error in response.json()["errors"]] == [field]
    assert client.get("/categories").headers["x-total-count"] == "0"


def test_create_category_ignores_read_only_fields(client: TestClient) -> None:
    response = client.post("/categories", json={"name": "Hats", "id": 99, "version": 7})

    assert response.status_code == 201
    assert response.json()["version"] == 1
    assert response.json()["id"] != 99


@pytest.mark.parametrize("other", ["Shoes", "shoes", "SHOES", "  sHoEs "])
def test_category_names_clash_without_regard_to_case(client: TestClient, other: str) -> None:
    assert client.post("/categories", json={"name": "Shoes"}).status_code == 201

    response = client.post("/categories", json={"name": other})

    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "urn:catalog:problem:duplicate-category-name"
    assert "ignoring case" in problem["detail"]
    assert client.get("/categories").headers["x-total-count"] == "1"


def test_renaming_to_a_taken_name_is_409_and_changes_nothing(
    client: TestClient, make_category: MakeCategory
) -> None:
    make_category(name="Shoes")
    hats = make_category(name="Hats")

    response = client.patch(f"/categories/{hats['id']}", json={"name": "SHOES"})

    assert response.status_code == 409
    assert client.get(f"/categories/{hats['id']}").json() == hats


def test_renaming_a_category_to_its_own_name_in_other_case_is_allowed(
    client: TestClient, make_category: MakeCategory
) -> None:
    shoes = make_category(name="shoes")

    response = client.put(f"/categories/{shoes['id']}", json={"name": "Shoes"})

    assert response.status_code == 200
    assert response.json()["name"] == "Shoes"


def test_read_category_answers_etag_and_304_on_if_none_match(
    client: TestClient, make_category: MakeCategory
) -> None:
    category = make_category()
    path = f"/categories/{category['id']}"

    first = client.get(path)
    again = client.get(path, headers={"If-None-Match": first.headers["etag"]})

    assert first.status_code == 200
    assert first.headers["etag"] == '"1"'
    assert again.status_code == 304
    assert again.headers["etag"] == '"1"'
    assert again.content == b""
    assert client.get(path, headers={"If-None-Match": '"2"'}).status_code == 200


@pytest.mark.parametrize(
    ("method", "body"), [("GET", None), ("PATCH", {"name": "X"}), ("PUT", {}), ("DELETE", None)]
)
def test_a_missing_category_is_404(client: TestClient, method: str, body: Any) -> None:
    response = client.request(method, "/categories/424242", json=body)

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"] == "Category 424242 does not exist"


@pytest.mark.parametrize("category_id", ["0", "-1", "2147483648", "abc"])
def test_an_impossible_category_id_is_422_or_404(client: TestClient, category_id: str) -> None:
    response = client.get(f"/categories/{category_id}")

    # Not digits: no route matches (404); digits out of range: 422.
    assert response.status_code == (422 if category_id.isdigit() else 404)
    assert response.headers["content-type"] == PROBLEM


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_update_changes_only_the_fields_sent_and_bumps_the_version(
    client: TestClient, make_category: MakeCategory, method: str
) -> None:
    category = make_category(name="Shoes", description="All shoes")

    response = client.request(method, f"/categories/{category['id']}", json={"name": "Footwear"})

    assert response.status_code == 200
    assert response.headers["etag"] == '"2"'
    updated = response.json()
    assert (updated["name"], updated["description"], updated["version"]) == (
        "Footwear",
        "All shoes",
        2,
    )
    assert updated["updated_at"] > category["updated_at"]
    assert updated["created_at"] == category["created_at"]


def test_patch_accepts_merge_patch_and_null_clears_the_description(
    client: TestClient, make_category: MakeCategory
) -> None:
    category = make_category(description="Soon gone")

    response = client.patch(
        f"/categories/{category['id']}",
        content='{"description": null}',
        headers={"Content-Type": "application/merge-patch+json"},
    )

    assert response.status_code == 200
    assert response.json()["description"] is None


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_update_with_null_name_is_422_and_changes_nothing(
    client: TestClient, make_category: MakeCategory, method: str
) -> None:
    category = make_category()

    response = client.request(method, f"/categories/{category['id']}", json={"name": None})

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "name"]
    assert client.get(f"/categories/{category['id']}").json() == category


def test_update_with_an_empty_body_changes_nothing(
    client: TestClient, make_category: MakeCategory
) -> None:
    category = make_category()

    response = client.patch(f"/categories/{category['id']}", json={})

    assert response.status_code == 200
    assert response.json() == category


@pytest.mark.parametrize(
    ("method", "body"), [("PUT", {"name": "New"}), ("PATCH", {"name": "New"}), ("DELETE", None)]
)
def test_a_stale_if_match_is_412_and_changes_nothing(
    client: TestClient, make_category: MakeCategory, method: str, body: Any
) -> None:
    category = make_category()
    path = f"/categories/{category['id']}"
    assert client.patch(path, json={"description": "v2"}).status_code == 200

    response = client.request(method, path, json=body, headers={"If-Match": '"1"'})

    assert response.status_code == 412
    assert response.json()["type"] == "urn:catalog:problem:stale-version"
    assert response.json()["current_version"] == 2
    assert client.get(path).json()["version"] == 2


def test_a_current_if_match_writes(client: TestClient, make_category: MakeCategory) -> None:
    category = make_category()
    path = f"/categories/{category['id']}"

    patched = client.patch(path, json={"name": "Renamed"}, headers={"If-Match": '"1"'})
    deleted = client.delete(path, headers={"If-Match": patched.headers["etag"]})

    assert patched.status_code == 200
    assert deleted.status_code == 204
    assert client.get(path).status_code == 404


def test_a_body_that_is_not_json_is_415_and_malformed_json_400(
    client: TestClient, make_category: MakeCategory
) -> None:
    category = make_category()
    path = f"/categories/{category['id']}"

    not_json = client.patch(path, content="name=x", headers={"Content-Type": "text/plain"})
    malformed = client.post(
        "/categories", content="{", headers={"Content-Type": "application/json"}
    )

    assert not_json.status_code == 415
    assert malformed.status_code == 400
    assert malformed.headers["content-type"] == PROBLEM


def test_delete_category_is_204_then_404(client: TestClient, make_category: MakeCategory) -> None:
    category = make_category()

    response = client.delete(f"/categories/{category['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"/categories/{category['id']}").status_code == 404


def test_delete_a_category_that_products_name_is_409_saying_how_many(
    client: TestClient, make_category: MakeCategory, make_product: MakeProduct
) -> None:
    category = make_category()
    products = [make_product(category_id=category["id"]) for _ in range(3)]
    make_product()  # names no category

    refused = client.delete(f"/categories/{category['id']}")

    assert refused.status_code == 409
    assert refused.headers["content-type"] == PROBLEM
    problem = refused.json()
    assert problem["type"] == "urn:catalog:problem:category-in-use"
    assert problem["products"] == 3
    assert "3 products" in problem["detail"]
    assert client.get(f"/categories/{category['id']}").json() == category

    for product in products:
        moved = client.patch(f"/products/{product['id']}", json={"category_id": None})
        assert moved.status_code == 200
    assert client.delete(f"/categories/{category['id']}").status_code == 204


# Listing ----------------------------------------------------------------------------------


@pytest.fixture
def categories(make_category: MakeCategory) -> list[dict[str, Any]]:
    names = ["Shoes", "hats", "Shirts", "socks", "Bags", "shorts", "Belts"]
    return [make_category(name=name) for name in names]


def test_list_categories_is_an_array_with_total_count(
    client: TestClient, categories: list[dict[str, Any]]
) -> None:
    response = client.get("/categories")

    assert response.status_code == 200
    assert response.json() == categories
    assert response.headers["x-total-count"] == str(len(categories))
    assert "link" not in response.headers


def test_list_categories_q_is_a_case_insensitive_substring_of_the_name(
    client: TestClient, categories: list[dict[str, Any]]
) -> None:
    response = client.get("/categories", params={"q": "SH"})

    assert [c["name"] for c in response.json()] == ["Shoes", "Shirts", "shorts"]
    assert response.headers["x-total-count"] == "3"
    assert client.get("/categories", params={"q": "%"}).json() == []


@pytest.mark.parametrize("sort", ["name", "-name", "created_at", "-updated_at", "-id"])
def test_list_categories_sorts_by_the_allowed_fields(
    client: TestClient, categories: list[dict[str, Any]], sort: str
) -> None:
    field, descending = sort.lstrip("-"), sort.startswith("-")

    listed = client.get("/categories", params={"sort": sort}).json()

    expected = sorted(categories, key=lambda c: (c[field], c["id"]), reverse=descending)
    assert [c["id"] for c in listed] == [c["id"] for c in expected]


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "price"},
        {"sort": "name,name"},
        {"limit": 0},
        {"limit": 1001},
        {"skip": -1},
        {"cursor": "not-a-cursor"},
        {"q": ""},
    ],
)
def test_list_categories_refuses_what_is_out_of_range(
    client: TestClient, params: dict[str, Any]
) -> None:
    response = client.get("/categories", params=params)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


@pytest.mark.parametrize("sort", ["id", "-name", "created_at"])
def test_following_next_visits_every_category_once(
    client: TestClient, categories: list[dict[str, Any]], sort: str
) -> None:
    response = client.get("/categories", params={"limit": 2, "sort": sort})
    seen: list[int] = []
    while True:
        assert response.status_code == 200
        assert response.headers["x-total-count"] == str(len(categories))
        seen += [category["id"] for category in response.json()]
        links = _links(response)
        if "next" not in links:
            break
        assert links["next"].startswith("/categories?")
        response = client.get(links["next"])

    assert sorted(seen) == sorted(category["id"] for category in categories)
    assert len(seen) == len(set(seen))


def test_offset_pages_link_prev_and_first(
    client: TestClient, categories: list[dict[str, Any]]
) -> None:
    response = client.get("/categories", params={"skip": 4, "limit": 2, "q": "s"})

    links = _links(response)
    assert set(links) == {"next", "prev", "first"}
    assert "q=s" in links["prev"] and "skip=2" in links["prev"]
    assert "skip" not in links["first"]


def test_a_cursor_from_the_products_listing_is_refused(
    client: TestClient, make_product: MakeProduct
) -> None:
    for _ in range(3):
        make_product()
    cursor = _links(client.get("/products", params={"limit": 1}))["next"].split("cursor=")[1]

    response = client.get("/categories", params={"limit": 1, "cursor": cursor})

    assert response.status_code == 422


# API keys --------------------------------------------------------------------------------

KEY = "category-key-0123456789"


@pytest.fixture
def with_api_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(get_settings(), "api_keys", [KEY])
    yield


@pytest.mark.usefixtures("with_api_key")
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/categories", {"name": "New"}),
        ("PUT", "/categories/{id}", {"name": "New"}),
        ("PATCH", "/categories/{id}", {"name": "New"}),
        ("DELETE", "/categories/{id}", None),
    ],
)
def test_category_writes_need_an_api_key_and_reads_do_not(
    client: TestClient, method: str, path: str, body: Any
) -> None:
    created = client.post("/categories", json={"name": "Mine"}, headers={"X-API-Key": KEY})
    category = created.json()
    target = path.format(id=category["id"])

    refused = client.request(method, target, json=body)
    allowed = client.request(method, target, json=body, headers={"Authorization": f"Bearer {KEY}"})

    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert allowed.status_code in (200, 201, 204)
    assert client.get("/categories").status_code == 200
