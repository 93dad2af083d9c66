"""GET /products: filters, sorting, offset and keyset paging, X-Total-Count and Link."""

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.pagination import encode_cursor
from models import Product

MakeProduct = Callable[..., dict[str, Any]]
SORT_FIELDS = ["id", "name", "price", "quantity", "created_at", "updated_at"]
LINK = re.compile(r'<([^>]+)>; rel="(\w+)"')


def _links(response: Any) -> dict[str, str]:
    return {rel: url for url, rel in LINK.findall(response.headers.get("link", ""))}


@pytest.fixture
def catalog(db: Session) -> list[Product]:
    """40 products with many equal sort values: names, prices, quantities and timestamps repeat."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    products = [
        Product(
            name=["Alpha", "beta", "Gamma", "delta"][i % 4],
            description=["red mug", "blue 100% cotton", "under_score", None, "back\\slash"][i % 5],
            price=Decimal(["1.00", "2.50", "2.50", "10.00", "99.99"][i % 5]),
            quantity=[0, 3, 3, 0, 7, 12][i % 6],
            sku=f"SKU-{i:03d}",
            created_at=base + timedelta(minutes=i // 3),
            updated_at=base + timedelta(minutes=i // 4),
        )
        for i in range(40)
    ]
    db.add_all(products)
    db.commit()
    return products


def _walk(client: TestClient, url: str, params: dict[str, Any]) -> tuple[list[int], int]:
    """Follow `Link: next` from the first page; return the ids seen and the number of pages."""
    response = client.get(url, params=params)
    ids, pages = [], 0
    while True:
        assert response.status_code == 200, response.text
        pages += 1
        ids += [product["id"] for product in response.json()]
        links = _links(response)
        if "next" not in links:
            return ids, pages
        assert pages < 100, "the walk does not end"
        response = client.get(links["next"])


def _expected(products: list[Product], sort: str, keep: Callable[[Product], bool]) -> list[int]:
    keys = [(part.removeprefix("-"), part.startswith("-")) for part in sort.split(",")]
    if all(field != "id" for field, _ in keys):
        keys.append(("id", keys[-1][1]))
    rows = [product for product in products if keep(product)]
    for field, descending in reversed(keys):  # stable sorts, last key first
        rows.sort(key=lambda product: getattr(product, field), reverse=descending)
    return [product.id for product in rows]


FILTERS: list[tuple[dict[str, Any], Callable[[Product], bool]]] = [
    ({}, lambda p: True),
    ({"in_stock": "true", "min_price": "2.5"}, lambda p: p.quantity > 0 and p.price >= 2.5),
    ({"q": "MUG"}, lambda p: "mug" in (p.name + " " + (p.description or "")).lower()),
    ({"max_price": "10", "in_stock": "false"}, lambda p: p.price <= 10 and p.quantity == 0),
]


@pytest.mark.parametrize("direction", ["", "-"])
@pytest.mark.parametrize("field", SORT_FIELDS)
@pytest.mark.parametrize(("filters", "keep"), FILTERS, ids=["all", "stock", "q", "cheap-empty"])
def test_following_next_visits_every_matching_row_exactly_once(
    client: TestClient,
    catalog: list[Product],
    field: str,
    direction: str,
    filters: dict[str, Any],
    keep: Callable[[Product], bool],
) -> None:
    sort = direction + field
    expected = _expected(catalog, sort, keep)

    ids, pages = _walk(client, "/products", {"limit": 3, "sort": sort, **filters})

    assert ids == expected
    assert pages == max(1, -(-len(expected) // 3))


@pytest.mark.parametrize("sort", ["-price,name", "quantity,-created_at", "name,-id", "-name,price"])
def test_multi_field_sorts_walk_in_order(
    client: TestClient, catalog: list[Product], sort: str
) -> None:
    ids, _ = _walk(client, "/products", {"limit": 7, "sort": sort})

    assert ids == _expected(catalog, sort, lambda p: True)


def test_walk_from_an_offset_page_continues_after_it(
    client: TestClient, catalog: list[Product]
) -> None:
    expected = _expected(catalog, "price", lambda p: True)

    ids, _ = _walk(client, "/products", {"limit": 5, "skip": 10, "sort": "price"})

    assert ids == expected[10:]


def test_offset_page_matches_the_sorted_slice(client: TestClient, catalog: list[Product]) -> None:
    response = client.get("/products", params={"sort": "-quantity", "skip": 4, "limit": 6})

    assert [p["id"] for p in response.json()] == _expected(catalog, "-quantity", bool)[4:10]


@pytest.mark.parametrize(("filters", "keep"), FILTERS, ids=["all", "stock", "q", "cheap-empty"])
def test_total_count_is_the_number_of_matching_rows(
    client: TestClient,
    catalog: list[Product],
    filters: dict[str, Any],
    keep: Callable[[Product], bool],
) -> None:
    response = client.get("/products", params={"limit": 2, **filters})

    assert int(response.headers["x-total-count"]) == sum(map(keep, catalog))


@pytest.mark.parametrize("skip", [0, 20, 39, 40, 41, 1000])
def test_total_count_holds_on_every_page_and_past_the_end(
    client: TestClient, catalog: list[Product], skip: int
) -> None:
    response = client.get("/products", params={"limit": 3, "skip": skip, "in_stock": "true"})

    assert len(response.json()) == len(
        _expected(catalog, "id", lambda p: p.quantity > 0)[skip:][:3]
    )
    assert int(response.headers["x-total-count"]) == sum(p.quantity > 0 for p in catalog)


def test_total_count_holds_on_an_empty_page_after_a_cursor(
    client: TestClient, catalog: list[Product]
) -> None:
    last = client.get("/products", params={"limit": 39})
    links = _links(last)
    assert "next" in links
    beyond = client.get(links["next"])  # the one row left
    assert len(beyond.json()) == 1
    client.delete(f"/products/{beyond.json()[0]['id']}")  # now the cursor points past the end

    response = client.get(links["next"])

    assert response.json() == []
    assert response.headers["x-total-count"] == "39"


def test_filters_combine_with_and(client: TestClient, catalog: list[Product]) -> None:
    params = {"q": "cotton", "min_price": "2", "max_price": "2.5", "in_stock": "true"}

    products = client.get("/products", params=params).json()

    assert products
    assert all(
        "cotton" in (p["description"] or "") and 2 <= p["price"] <= 2.5 and p["quantity"] > 0
        for p in products
    )


def test_sku_filter_is_an_exact_match(client: TestClient, catalog: list[Product]) -> None:
    assert [p["sku"] for p in client.get("/products", params={"sku": "SKU-007"}).json()] == [
        "SKU-007"
    ]
    assert client.get("/products", params={"sku": "SKU-00"}).json() == []


def test_price_bounds_are_inclusive(client: TestClient, catalog: list[Product]) -> None:
    prices = {
        p["price"]
        for p in client.get("/products", params={"min_price": 2.5, "max_price": 10}).json()
    }

    assert prices == {2.5, 10.0}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("100%", {"blue 100% cotton"}),
        ("%", {"blue 100% cotton"}),
        ("_", {"under_score"}),
        ("d_m", set()),  # as a wildcard, _ would match "red mug"
        ("\\", {"back\\slash"}),
        ("GAMMA", None),
    ],
)
def test_q_matches_wildcards_literally_and_ignores_case(
    client: TestClient, catalog: list[Product], q: str, expected: set[str] | None
) -> None:
    products = client.get("/products", params={"q": q, "limit": 1000}).json()

    if expected is None:
        assert {p["name"] for p in products} == {"Gamma"}
    else:
        assert {p["description"] for p in products} == expected


def test_link_urls_keep_every_filter_and_the_sort(
    client: TestClient, catalog: list[Product]
) -> None:
    params = {"q": "e", "min_price": "1", "in_stock": "true", "sort": "-price", "limit": "2"}

    response = client.get("/products", params={**params, "skip": "4"})

    links = _links(response)
    assert set(links) == {"next", "prev", "first"}
    for rel, url in links.items():
        split = urlsplit(url)
        assert split.path == "/products", rel
        query = {key: values[0] for key, values in parse_qs(split.query).items()}
        assert {key: query[key] for key in params} == params, rel
    assert "skip" not in parse_qs(urlsplit(links["first"]).query)
    assert parse_qs(urlsplit(links["prev"]).query)["skip"] == ["2"]


def test_first_page_has_next_only_and_last_page_has_no_next(
    client: TestClient, catalog: list[Product]
) -> None:
    first = client.get("/products", params={"limit": 30})
    assert set(_links(first)) == {"next"}

    last = client.get(_links(first)["next"])
    assert len(last.json()) == 10
    assert set(_links(last)) == {"first"}


def test_single_page_has_no_link_header(client: TestClient, catalog: list[Product]) -> None:
    response = client.get("/products", params={"limit": 1000})

    assert "link" not in response.headers


def _next_cursor(client: TestClient, **params: Any) -> str:
    link = _links(client.get("/products", params={"limit": 2, **params}))["next"]
    return parse_qs(urlsplit(link).query)["cursor"][0]


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "colour"},
        {"sort": "price;drop table products"},
        {"sort": "price,price"},
        {"sort": "price,-price"},
        {"sort": ""},
        {"sort": "-"},
        {"skip": -1},
        {"skip": 10**12},
        {"limit": 0},
        {"limit": 1001},
        {"min_price": -1},
        {"min_price": "abc"},
        {"max_price": "NaN"},
        {"max_price": "Infinity"},
        {"min_price": "1e400"},
        {"min_price": 5, "max_price": 4},
        {"in_stock": "perhaps"},
        {"q": ""},
        {"q": "nul\x00"},
        {"q": "x" * 201},
        {"sku": "not a sku"},
        {"cursor": "!!!"},
        {"cursor": "bm90LWEtY3Vyc29y"},
        {"cursor": ""},
    ],
)
def test_invalid_parameters_are_422_problems(
    client: TestClient, catalog: list[Product], params: dict[str, Any]
) -> None:
    response = client.get("/products", params=params)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"][0] == "query"


def test_unknown_sort_field_error_says_what_is_allowed(client: TestClient) -> None:
    response = client.get("/products", params={"sort": "colour"})

    assert "colour" in response.json()["detail"]
    assert "created_at" in response.json()["detail"]


def test_cursor_used_with_other_filters_is_422(client: TestClient, catalog: list[Product]) -> None:
    cursor = _next_cursor(client, q="a")

    response = client.get("/products", params={"q": "b", "cursor": cursor})

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "cursor"]


def test_cursor_used_with_another_sort_is_422(client: TestClient, catalog: list[Product]) -> None:
    cursor = _next_cursor(client, sort="price")

    assert client.get("/products", params={"sort": "-price", "cursor": cursor}).status_code == 422


def test_tampered_cursor_is_422(client: TestClient, catalog: list[Product]) -> None:
    cursor = _next_cursor(client)
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")

    assert client.get("/products", params={"cursor": tampered}).status_code == 422


@pytest.mark.parametrize(
    ("sort", "values"),
    [
        ("id", [2**70]),  # no 4-byte integer
        ("quantity", [-(2**31) - 1, 1]),
        ("name", ["\x00", 1]),  # no text column holds a NUL
        ("name", ["\ud800", 1]),  # nor a lone surrogate
    ],
)
def test_a_signed_cursor_of_values_no_row_can_hold_is_422(
    client: TestClient, catalog: list[Product], sort: str, values: list[Any]
) -> None:
    # The cursors' key is in the public source: anyone can sign one. What it holds is checked.
    canonical = {"path": "/products", "filters": {}, "sort": sort}
    forged = encode_cursor(values, json.dumps(canonical, sort_keys=True).encode())

    response = client.get("/products", params={"sort": sort, "cursor": forged})

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "cursor"]


def test_cursor_with_skip_is_422(client: TestClient, catalog: list[Product]) -> None:
    cursor = _next_cursor(client)

    response = client.get("/products", params={"cursor": cursor, "skip": 2})

    assert response.status_code == 422


def test_cursor_may_change_the_page_size(client: TestClient, catalog: list[Product]) -> None:
    cursor = _next_cursor(client)

    response = client.get("/products", params={"cursor": cursor, "limit": 5})

    assert [p["id"] for p in response.json()] == sorted(p.id for p in catalog)[2:7]


@pytest.mark.parametrize("path", ["/products", "/categories"])
@pytest.mark.parametrize("query", ["colour=red", "min_prce=5", "page=2&per_page=1"])
def test_an_unknown_query_parameter_is_422_naming_it(
    client: TestClient, path: str, query: str
) -> None:
    response = client.get(f"{path}?{query}")

    assert response.status_code == 422
    named = {error["loc"][-1] for error in response.json()["errors"]}
    assert named == {part.split("=")[0] for part in query.split("&")}
