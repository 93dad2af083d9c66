"""Limits that keep one request from costing more than any valid one (docs/api.md, "Limits").

In process here; tests/api/test_hostile_clients.py holds the same limits against a real server
while other clients are served.
"""

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.problems import MAX_LISTED_ERRORS
from dependencies.conditional import MAX_ENTITY_TAGS
from tests.asgi import sent_by_the_app

MakeProduct = Callable[..., dict[str, Any]]
MakeCategory = Callable[..., dict[str, Any]]
PROBLEM = "application/problem+json"


def _tags(count: int, first: int = 1) -> str:
    return ", ".join(f'"{version}"' for version in range(first, first + count))


def test_a_422_lists_the_first_50_errors_and_counts_them_all(client: TestClient) -> None:
    # 30 items with 4 invalid fields each: 120 errors, none of them an unknown field.
    bad = {"name": "", "price": -1, "quantity": "x", "sku": 7}

    response = client.post("/products/bulk", json=[bad] * 30)

    assert response.status_code == 422
    problem = response.json()
    assert len(problem["errors"]) == MAX_LISTED_ERRORS
    assert problem["total_errors"] == 120
    assert problem["detail"].endswith("(and 119 more)")
    assert problem["errors"][0]["loc"] == ["body", 0, "sku"]


def test_a_422_with_few_errors_lists_them_all(client: TestClient) -> None:
    response = client.post("/products", json={"name": "", "price": -1})

    assert response.json()["total_errors"] == len(response.json()["errors"]) == 2


@pytest.mark.parametrize(
    ("path", "body"),
    [
        # ~95,000 unknown fields in 1 MiB: pydantic would build one error for each.
        ("/products", {"name": "x", "price": 1, **{f"{i:x}": 0 for i in range(95_000)}}),
        # 51 unknown fields in all, spread over a batch: the limit is the body's, not an item's.
        ("/products/bulk", [{"name": "x", "price": 1, f"extra{i}": 0} for i in range(51)]),
    ],
    ids=["one object", "a batch"],
)
def test_a_body_of_many_unknown_fields_gets_one_small_error(
    client: TestClient, path: str, body: Any
) -> None:
    content = json.dumps(body, separators=(",", ":")).encode()
    assert len(content) <= 1024 * 1024

    response = client.post(path, content=content, headers={"Content-Type": "application/json"})

    assert response.status_code == 422
    assert len(response.content) < 1000
    assert response.json()["errors"] == [
        {"loc": ["body"], "msg": response.json()["errors"][0]["msg"], "type": "too_many_fields"}
    ]
    assert response.json()["total_errors"] == 1


def test_50_unknown_fields_are_each_an_error(client: TestClient) -> None:
    body = {"name": "x", "price": 1, **{f"extra{i}": 0 for i in range(50)}}

    response = client.post("/products", json=body)

    assert response.json()["total_errors"] == 50
    assert {error["type"] for error in response.json()["errors"]} == {"extra_forbidden"}


def test_a_long_field_name_is_cut_in_the_422(client: TestClient) -> None:
    response = client.post("/products", json={"name": "x", "price": 1, "x" * 100_000: 0})

    assert response.status_code == 422
    assert len(response.content) < 1000
    assert response.json()["errors"][0]["loc"] == ["body", "x" * 100 + "…"]


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
@pytest.mark.parametrize(
    ("collection", "changes"), [("products", {"quantity": 9}), ("categories", {"name": "New"})]
)
def test_if_match_with_101_tags_is_400_and_changes_nothing(
    client: TestClient,
    make_product: MakeProduct,
    make_category: MakeCategory,
    method: str,
    collection: str,
    changes: dict[str, Any],
) -> None:
    row = make_product() if collection == "products" else make_category()
    path = f"/{collection}/{row['id']}"
    json_body = None if method == "DELETE" else changes

    response = client.request(
        method, path, json=json_body, headers={"If-Match": _tags(MAX_ENTITY_TAGS + 1)}
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert "at most 100 entity tags" in response.json()["detail"]
    assert client.get(path).json() == row


def test_if_match_with_100_tags_is_compared(client: TestClient, make_product: MakeProduct) -> None:
    product = make_product()
    path = f"/products/{product['id']}"

    # Tags 2..101 do not name version 1, tags 1..100 do.
    stale = client.patch(path, json={"quantity": 9}, headers={"If-Match": _tags(100, first=2)})
    fresh = client.patch(path, json={"quantity": 9}, headers={"If-Match": _tags(100)})

    assert stale.status_code == 412
    assert fresh.status_code == 200


@pytest.mark.parametrize("path", ["/products/999999", "/categories/999999"])
def test_if_none_match_with_101_tags_is_400_before_the_row_is_read(
    client: TestClient, path: str
) -> None:
    response = client.get(path, headers={"If-None-Match": _tags(101)})

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ('"a,b", "1"', 304),  # a comma inside a tag belongs to the tag
        ('"7", , "1",', 304),  # empty list elements are allowed (RFC 9110 §5.6.1)
        ('W/"1"', 304),  # If-None-Match uses the weak comparison
        ('"1" "7"', 400),  # not a list of entity tags (the contract: never ignored)
        ('"1"x', 400),
        ("1", 400),  # no quotes
        ('"1', 400),  # a missing quote
        (", ".join(['"a,b"'] * 100) + ', "1"', 400),  # 101 tags, commas inside
        ("," * 10_000 + '"1"', 304),  # empty elements are no tags
        # No version of ours; more digits than Python converts to an int (4,300).
        pytest.param('"' + "9" * 5000 + '", "1"', 304, id="a tag of 5000 digits"),
        pytest.param('"' + "0" * 5000 + '1"', 200, id="5000 zeros and 1"),
    ],
)
def test_if_none_match_reads_a_list_of_entity_tags(
    client: TestClient, make_product: MakeProduct, header: str, status: int
) -> None:
    product = make_product()

    response = client.get(f"/products/{product['id']}", headers={"If-None-Match": header})

    assert response.status_code == status


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        (['"7"', '"1"'], 304),  # the tag on the second line counts
        (['"1"', "junk"], 400),  # a second line that is no entity tag is never ignored
        (['"01"'], 200),  # entity tags compare as text: "01" is not the ETag "1"
    ],
)
def test_if_none_match_on_several_lines_is_one_list(
    client: TestClient, make_product: MakeProduct, lines: list[str], status: int
) -> None:
    product = make_product()

    headers = [("If-None-Match", line) for line in lines]
    response = client.get(f"/products/{product['id']}", headers=headers)

    assert response.status_code == status


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        (['"7"', '"1"'], 200),  # the current version is on the second line
        (['"1"', "3"], 400),  # a second line that is no entity tag is never ignored
        (['"001"'], 412),  # not the ETag "1", though the same number
    ],
)
def test_if_match_on_several_lines_is_one_list(
    client: TestClient, make_product: MakeProduct, lines: list[str], status: int
) -> None:
    product = make_product()

    headers = [("If-Match", line) for line in lines]
    response = client.patch(f"/products/{product['id']}", json={"quantity": 6}, headers=headers)
    after = client.get(f"/products/{product['id']}").json()

    assert response.status_code == status
    assert product["quantity"] != 6
    assert after["quantity"] == (6 if status == 200 else product["quantity"])


def _answer_of_the_app(headers: list[tuple[bytes, bytes]], http_version: str = "1.1") -> Any:
    """Status, content type, headers and body of the app's answer to a GET /health: straight
    from the app, as a server that passes any head through (httptools) would call it."""
    sent = sent_by_the_app("GET", "/health", headers, http_version)
    start_headers = dict(sent[0]["headers"])
    body = b"".join(message.get("body", b"") for message in sent[1:])
    return sent[0]["status"], start_headers.get(b"content-type"), start_headers, body


@pytest.mark.parametrize(
    ("headers", "http_version", "status"),
    [
        ([], "1.1", 400),
        ([(b"host", b"a"), (b"host", b"b")], "1.1", 400),
        ([(b"host", b"a"), (b"host", b"b")], "1.0", 400),
        ([], "1.0", 200),  # HTTP/1.0 predates Host
        ([], "2", 200),  # HTTP/2 names the host in :authority
        ([(b"host", b"a")], "1.1", 200),
    ],
)
def test_a_request_needs_exactly_one_host(
    headers: list[tuple[bytes, bytes]], http_version: str, status: int
) -> None:
    answered, content_type, _, _ = _answer_of_the_app(headers, http_version)

    assert answered == status
    if status == 400:
        assert content_type == PROBLEM.encode()


def test_headers_over_64_kib_in_all_are_431_and_close_the_connection() -> None:
    many = [(b"host", b"a")] + [(b"x-part", b"a" * 1000)] * 66

    status, content_type, headers, body = _answer_of_the_app(many)

    assert status == 431
    assert content_type == PROBLEM.encode()
    assert headers[b"connection"] == b"close"
    assert b"65536" in body
    assert _answer_of_the_app(many[:60])[0] == 200


@pytest.mark.parametrize("header", ["1", '"1', "W/1", '"1" "2"'])
@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_if_match_that_is_no_entity_tag_is_400_saying_how_to_write_one(
    client: TestClient, make_product: MakeProduct, header: str, method: str
) -> None:
    product = make_product()

    response = (
        client.request(
            method, f"/products/{product['id']}", headers={"If-Match": header}, json={"quantity": 1}
        )
        if method == "PATCH"
        else client.request(method, f"/products/{product['id']}", headers={"If-Match": header})
    )
    after = client.get(f"/products/{product['id']}")

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert '"3" or W/"3"' in response.json()["detail"]
    assert after.json()["version"] == product["version"]  # nothing changed


@pytest.mark.parametrize("path", ["/products/", "/no/such/"])
def test_a_target_over_8_kib_is_a_414_whatever_it_holds(client: TestClient, path: str) -> None:
    # Digits too: the access line's route lookup must not convert 9,000 of them (a 500).
    response = client.get(path + "9" * 9000)

    assert response.status_code == 414
    assert response.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    ("length", "status"),
    # The last goes on to the route, which wants a JSON body: 415.
    [(b"9" * 5000, 413), (b"0" * 5000 + b"1048577", 413), (b"0" * 5000 + b"2", 415)],
)
def test_a_content_length_of_thousands_of_digits_is_judged_by_its_value(
    length: bytes, status: int
) -> None:
    # Python refuses to convert more than 4,300 digits to an int: that must not be a 500.
    headers = [(b"host", b"testserver"), (b"content-length", length)]

    sent = sent_by_the_app("POST", "/products", headers)

    assert sent[0]["status"] == status


def test_if_match_with_a_tag_of_5000_digits_is_stale_not_a_500(
    client: TestClient, make_product: MakeProduct
) -> None:
    product = make_product()

    response = client.patch(
        f"/products/{product['id']}", json={"price": 2}, headers={"If-Match": f'"{"9" * 5000}"'}
    )

    assert response.status_code == 412
