"""Products and their categories: `category_id`, the `category_id` filter, `expand=category`,
and a foreign key that decides."""

import contextlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from sqlalchemy import Connection, event
from sqlalchemy.orm import Session

from dependencies.database import get_database_session
from main import app

MakeCategory = Callable[..., dict[str, Any]]
MakeProduct = Callable[..., dict[str, Any]]
PROBLEM = "application/problem+json"
# What a product carried before categories, plus its `category_id`.
BEFORE_CATEGORIES = {"id", "sku", "name", "description", "price", "quantity", "version"}
PRODUCT_FIELDS = BEFORE_CATEGORIES | {"created_at", "updated_at"} | {"category_id"}
LINK = re.compile(r'<([^>]+)>; rel="(\w+)"')


def test_every_product_answer_carries_category_id_and_no_category_without_expand(
    client: TestClient, make_product: MakeProduct
) -> None:
    product = make_product()
    path = f"/products/{product['id']}"

    answers = [
        product,
        client.get(path).json(),
        client.get("/products").json()[0],
        client.patch(path, json={"quantity": 1}).json(),
        client.put(path, json={"quantity": 2}).json(),
        client.post(f"{path}/stock", json={"delta": 1}).json(),
        client.post("/products/bulk", json=[{"name": "B", "price": 1}]).json()[0],
    ]

    for answer in answers:
        assert set(answer) == PRODUCT_FIELDS
        assert answer["category_id"] is None


def test_create_and_update_accept_category_id_and_null_clears_it(
    client: TestClient, make_category: MakeCategory, make_product: MakeProduct
) -> None:
    shoes, hats = make_category(name="Shoes"), make_category(name="Hats")

    product = make_product(category_id=shoes["id"])
    moved = client.patch(f"/products/{product['id']}", json={"category_id": hats["id"]})
    cleared = client.put(f"/products/{product['id']}", json={"category_id": None})

    assert product["category_id"] == shoes["id"]
    assert moved.status_code == 200
    assert moved.json()["category_id"] == hats["id"]
    assert cleared.status_code == 200
    assert cleared.json()["category_id"] is None
    assert client.get(f"/products/{product['id']}").json()["category_id"] is None


def test_create_with_an_unknown_category_is_422_naming_category_id(client: TestClient) -> None:
    response = client.post("/products", json={"name": "Tee", "price": 5, "category_id": 4242})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "urn:catalog:problem:unknown-category"
    assert problem["errors"] == [
        {
            "loc": ["body", "category_id"],
            "msg": "Category 4242 does not exist",
            "type": "unknown_category",
        }
    ]
    assert problem["detail"] == "body.category_id: Category 4242 does not exist"
    assert client.get("/products").headers["x-total-count"] == "0"


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_update_to_an_unknown_category_is_422_and_changes_nothing(
    client: TestClient, make_product: MakeProduct, method: str
) -> None:
    product = make_product()

    response = client.request(
        method, f"/products/{product['id']}", json={"category_id": 4242, "quantity": 99}
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "category_id"]
    assert client.get(f"/products/{product['id']}").json() == product


@pytest.mark.parametrize("category_id", [0, -3, 2**31, "3", True, 1.5])
def test_an_impossible_category_id_is_422_before_any_sql(
    client: TestClient, category_id: Any
) -> None:
    response = client.post(
        "/products", json={"name": "Tee", "price": 5, "category_id": category_id}
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "category_id"]


def test_bulk_create_with_unknown_categories_names_each_index_and_creates_none(
    client: TestClient, make_category: MakeCategory
) -> None:
    shoes = make_category()
    items = [
        {"name": "A", "price": 1, "category_id": shoes["id"]},
        {"name": "B", "price": 1, "category_id": 9001},
        {"name": "C", "price": 1},
        {"name": "D", "price": 1, "category_id": 9002},
    ]

    response = client.post("/products/bulk", json=items)

    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["errors"]] == [
        ["body", 1, "category_id"],
        ["body", 3, "category_id"],
    ]
    assert client.get("/products").headers["x-total-count"] == "0"


def test_category_id_filter_combines_with_the_others_and_with_cursors(
    client: TestClient, make_category: MakeCategory, make_product: MakeProduct
) -> None:
    shoes, hats = make_category(name="Shoes"), make_category(name="Hats")
    for i in range(24):
        make_product(
            name=f"{'Red' if i % 3 else 'Blue'} {i}",
            price=[5, 15, 25, 15, 25][i % 5],
            category_id=[shoes["id"], shoes["id"], hats["id"], None][i % 4],
        )
    listed = client.get("/products", params={"limit": 1000}).json()
    params = {"category_id": shoes["id"], "q": "red", "min_price": 10, "sort": "-price"}
    expected = sorted(
        (
            p
            for p in listed
            if p["category_id"] == shoes["id"] and "Red" in p["name"] and p["price"] >= 10
        ),
        key=lambda p: (p["price"], p["id"]),
        reverse=True,
    )

    response = client.get("/products", params={**params, "limit": 1})
    seen = []
    while True:
        assert response.status_code == 200
        assert response.headers["x-total-count"] == str(len(expected))
        seen += response.json()
        links = {rel: url for url, rel in LINK.findall(response.headers.get("link", ""))}
        if "next" not in links:
            break
        assert f"category_id={shoes['id']}" in links["next"]
        response = client.get(links["next"])

    assert len(expected) >= 3
    assert [p["id"] for p in seen] == [p["id"] for p in expected]


def test_a_cursor_made_for_one_category_is_refused_for_another(
    client: TestClient, make_category: MakeCategory, make_product: MakeProduct
) -> None:
    shoes, hats = make_category(name="Shoes"), make_category(name="Hats")
    for _ in range(3):
        make_product(category_id=shoes["id"])
    first = client.get("/products", params={"category_id": shoes["id"], "limit": 1})
    cursor = first.headers["link"].split("cursor=")[1].split(">")[0]

    response = client.get("/products", params={"category_id": hats["id"], "cursor": cursor})

    assert response.status_code == 422


@pytest.mark.parametrize("params", [{"category_id": 0}, {"category_id": "x"}, {"expand": "x"}])
def test_category_parameters_out_of_range_are_422(
    client: TestClient, params: dict[str, Any]
) -> None:
    assert client.get("/products", params=params).status_code == 422


def test_expand_category_embeds_id_and_name_or_null(
    client: TestClient, make_category: MakeCategory, make_product: MakeProduct
) -> None:
    shoes = make_category(name="Shoes", description="not embedded")
    named, unnamed = make_product(category_id=shoes["id"]), make_product()

    listed = client.get("/products", params={"expand": "category"})
    one = client.get(f"/products/{named['id']}", params={"expand": "category"})
    none = client.get(f"/products/{unnamed['id']}", params={"expand": "category"})

    assert listed.status_code == one.status_code == none.status_code == 200
    assert listed.json() == [
        {**named, "category": {"id": shoes["id"], "name": "Shoes"}},
        {**unnamed, "category": None},
    ]
    assert one.json() == {**named, "category": {"id": shoes["id"], "name": "Shoes"}}
    assert one.headers["etag"] == '"1"'
    assert none.json() == {**unnamed, "category": None}


def test_expand_keeps_etags_and_304(
    client: TestClient, make_category: MakeCategory, make_product: MakeProduct
) -> None:
    product = make_product(category_id=make_category()["id"])

    response = client.get(
        f"/products/{product['id']}",
        params={"expand": "category"},
        headers={"If-None-Match": '"1"'},
    )

    assert response.status_code == 304
    assert response.headers["etag"] == '"1"'


def test_expand_on_a_missing_product_is_404(client: TestClient) -> None:
    response = client.get("/products/424242", params={"expand": "category"})

    assert response.status_code == 404
    assert response.json()["detail"] == "Product 424242 does not exist"


def test_expand_pages_keep_expand_in_their_links(
    client: TestClient, make_category: MakeCategory, make_product: MakeProduct
) -> None:
    category = make_category()
    for _ in range(3):
        make_product(category_id=category["id"])

    first = client.get("/products", params={"expand": "category", "limit": 2})
    following = client.get(first.headers["link"].split("<")[1].split(">")[0])

    assert [p["category"]["id"] for p in first.json() + following.json()] == [category["id"]] * 3


# A fixed number of statements whatever the page size --------------------------------------


@contextmanager
def _statements(connection: Connection) -> Iterator[list[str]]:
    """Every statement sent on the test's connection meanwhile (savepoints included)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(connection, "before_cursor_execute", record)


def _selects(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith("SELECT")]


@pytest.mark.parametrize("skip", [0, 1])
def test_expand_runs_as_many_statements_for_100_products_as_for_1(
    client: TestClient,
    connection: Connection,
    make_category: MakeCategory,
    make_product: MakeProduct,
    skip: int,
) -> None:
    categories = [make_category() for _ in range(5)]
    make_product(category_id=categories[0]["id"])
    params: dict[str, str | int] = {"expand": "category", "limit": 1000, "skip": skip}

    with _statements(connection) as for_one:
        assert len(client.get("/products", params=params).json()) == 1 - skip
    for i in range(101):
        make_product(category_id=categories[i % 5]["id"] if i % 7 else None)
    with _statements(connection) as for_many:
        page = client.get("/products", params=params).json()

    assert len(page) == 102 - skip
    assert all(("category" in p) for p in page)
    assert len(for_many) == len(for_one)
    # The page and its categories are one SELECT (a join); an offset page counts in a second.
    assert len(_selects(for_many)) == 1 + (skip > 0)
    assert "JOIN categories" in _selects(for_many)[0]


def test_expand_on_one_product_is_one_select(
    client: TestClient,
    connection: Connection,
    make_category: MakeCategory,
    make_product: MakeProduct,
) -> None:
    product = make_product(category_id=make_category()["id"])

    with _statements(connection) as sent:
        assert client.get(f"/products/{product['id']}", params={"expand": "category"}).json()[
            "category"
        ]

    assert len(_selects(sent)) == 1


def test_every_read_of_either_resource_runs_on_the_read_session(
    client: TestClient, make_category: MakeCategory, make_product: MakeProduct
) -> None:
    category = make_category()
    product = make_product(category_id=category["id"])

    asked: list[str] = []

    def no_write_session(request: Request) -> Iterator[Session]:
        asked.append(request.url.path)
        raise AssertionError("a read asked for the write session")
        yield  # a generator dependency, like the one it replaces

    app.dependency_overrides[get_database_session] = no_write_session
    reads = [
        "/categories",
        f"/categories/{category['id']}",
        "/products",
        f"/products/{product['id']}",
        "/products?expand=category",
        f"/products/{product['id']}?expand=category",
    ]
    answers = {path: client.get(path) for path in reads}

    assert {path: answer.status_code for path, answer in answers.items()} == dict.fromkeys(
        reads, 200
    )
    assert answers[f"/products/{product['id']}?expand=category"].json()["category"] == {
        "id": category["id"],
        "name": category["name"],
    }
    assert asked == []
    # The override holds: a write asks for the write session.
    with contextlib.suppress(AssertionError):  # a 500, or raised where no layer catches it
        client.post("/categories", json={"name": "Not written"})
    assert asked == ["/categories"]
