"""Concurrent writers against a real server process with its own pool and committed data.

Not the savepoint session: a fresh database for this module (PostgreSQL when TEST_DATABASE_URL
is set, otherwise a SQLite file, where the database serialises the writers) and real threads.
"""

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.server import all_at_once, migrated_database, running_service


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("concurrency")
    with migrated_database("concurrency", directory) as url, running_service(url) as base_url:
        yield base_url


@pytest.fixture
def http(service: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service, timeout=30) as client:
        yield client


def _request(service: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request on its own connection, as a separate client would make it."""
    with httpx.Client(base_url=service, timeout=30) as client:
        return client.request(method, path, **kwargs)


def _create(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = http.post("/products", json={"name": "Item", "price": 1.5, **fields})
    assert response.status_code == 201, response.text
    product: dict[str, Any] = response.json()
    return product


def test_100_concurrent_creates_all_land_with_distinct_ids(
    service: str, http: httpx.Client
) -> None:
    before = int(http.get("/products").headers["x-total-count"])

    responses = all_at_once(
        100,
        lambda i: _request(
            service, "POST", "/products", json={"name": f"Concurrent {i}", "price": 2}
        ),
    )

    assert [response.status_code for response in responses] == [201] * 100
    ids = {response.json()["id"] for response in responses}
    assert len(ids) == 100
    for response in responses:
        assert http.get(response.headers["location"]).json() == response.json()
    assert int(http.get("/products").headers["x-total-count"]) == before + 100


def test_50_concurrent_stock_takes_on_30_in_stock_sell_exactly_30(
    service: str, http: httpx.Client
) -> None:
    product = _create(http, quantity=30)

    responses = all_at_once(
        50,
        lambda _: _request(service, "POST", f"/products/{product['id']}/stock", json={"delta": -1}),
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(200) == 30, statuses
    assert statuses.count(409) == 20, statuses
    final = http.get(f"/products/{product['id']}").json()
    assert final["quantity"] == 0
    assert final["version"] == product["version"] + 30
    assert sorted(r.json()["quantity"] for r in responses if r.status_code == 200) == list(
        range(30)
    )


@pytest.mark.parametrize("round_", range(10))
def test_two_patches_with_the_same_etag_exactly_one_wins(
    service: str, http: httpx.Client, round_: int
) -> None:
    product = _create(http, description="original", quantity=1)
    changes = [{"name": "Winner A", "price": 11.11}, {"description": "from B", "quantity": 77}]

    responses = all_at_once(
        2,
        lambda i: _request(
            service,
            "PATCH",
            f"/products/{product['id']}",
            json=changes[i],
            headers={"If-Match": '"1"'},
        ),
    )

    assert sorted(response.status_code for response in responses) == [200, 412]
    winner = next(i for i, response in enumerate(responses) if response.status_code == 200)
    loser = 1 - winner
    stored = http.get(f"/products/{product['id']}").json()
    assert stored["version"] == 2
    assert all(stored[field] == value for field, value in changes[winner].items())
    assert all(stored[field] == product[field] for field in changes[loser])


@pytest.mark.parametrize("round_", range(10))
def test_two_creates_with_the_same_sku_one_201_one_409(
    service: str, http: httpx.Client, round_: int
) -> None:
    sku = f"RACE-{round_}"

    responses = all_at_once(
        2,
        lambda i: _request(
            service, "POST", "/products", json={"name": f"Racer {i}", "price": 3, "sku": sku}
        ),
    )

    assert sorted(response.status_code for response in responses) == [201, 409]
    conflict = next(response for response in responses if response.status_code == 409)
    assert conflict.headers["content-type"] == "application/problem+json"
    listed = [p for p in http.get("/products", params={"limit": 1000}).json() if p["sku"] == sku]
    assert len(listed) == 1


def test_every_write_moves_updated_at_forward(http: httpx.Client) -> None:
    product = _create(http)

    patched = http.patch(f"/products/{product['id']}", json={"quantity": 4}).json()
    stocked = http.post(f"/products/{product['id']}/stock", json={"delta": 1}).json()

    stamps = [datetime.fromisoformat(p["updated_at"]) for p in (product, patched, stocked)]
    assert stamps[0] < stamps[1] < stamps[2]
    assert product["created_at"] == product["updated_at"]
    assert stocked["created_at"] == product["created_at"]


@pytest.mark.parametrize("round_", range(8))
def test_deleting_a_category_while_products_are_assigned_to_it_leaves_no_dangling_one(
    service: str, http: httpx.Client, round_: int
) -> None:
    created = http.post("/categories", json={"name": f"Racing {round_}"})
    assert created.status_code == 201, created.text
    category = created.json()
    products = [_create(http) for _ in range(6)]

    def race(i: int) -> httpx.Response:
        if i == 0:
            return _request(service, "DELETE", f"/categories/{category['id']}")
        if i % 2:  # half move an existing product into it, half create one in it
            path = f"/products/{products[i]['id']}"
            return _request(service, "PATCH", path, json={"category_id": category["id"]})
        body = {"name": f"New in {round_}", "price": 2, "category_id": category["id"]}
        return _request(service, "POST", "/products", json=body)

    responses = all_at_once(7, race)

    deleted, assignments = responses[0], responses[1:]
    statuses = [response.status_code for response in responses]
    assert all(status < 500 for status in statuses), statuses
    assert all(
        r.headers["content-type"] == "application/problem+json"
        for r in responses
        if r.status_code >= 400
    )
    assigned = [r for r in assignments if r.status_code in (200, 201)]
    if deleted.status_code == 204:
        # The delete won: every assignment came after it and was refused on category_id.
        assert assigned == []
        assert {r.status_code for r in assignments} == {422}
        assert all(r.json()["errors"][0]["loc"][-1] == "category_id" for r in assignments)
    else:
        # An assignment won: the delete was refused, naming how many products held the
        # category then (the assignments that came after it are not counted).
        assert deleted.status_code == 409, deleted.text
        assert {r.status_code for r in assignments} <= {200, 201}
        assert 1 <= deleted.json()["products"] <= len(assigned) == 6
    # Whatever the order, no product names a category that does not exist.
    existing = {c["id"] for c in http.get("/categories", params={"limit": 1000}).json()}
    named = {p["category_id"] for p in http.get("/products", params={"limit": 1000}).json()}
    assert named - {None} <= existing
