"""API keys protect every write; reads stay public; keys never reach the logs."""

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config import get_settings
from main import app

KEYS = ["first-key-0123456789", "second-key-abcdefghij"]
WRITES: list[tuple[str, str, Any]] = [
    ("POST", "/products", {"name": "Tee", "price": 5}),
    ("POST", "/products/bulk", [{"name": "Tee", "price": 5}]),
    ("PUT", "/products/{id}", {"price": 6}),
    ("PATCH", "/products/{id}", {"price": 6}),
    ("POST", "/products/{id}/stock", {"delta": 1}),
    ("DELETE", "/products/{id}", None),
]


@pytest.fixture
def with_api_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The process's settings, as API_KEYS would set them (restored after the test).
    monkeypatch.setattr(get_settings(), "api_keys", KEYS)
    yield


@pytest.fixture
def product(client: TestClient) -> dict[str, Any]:
    response = client.post(
        "/products", json={"name": "Mug", "price": 3}, headers={"X-API-Key": KEYS[0]}
    )
    created: dict[str, Any] = response.json()
    return created


@pytest.mark.usefixtures("with_api_keys")
@pytest.mark.parametrize(("method", "path", "body"), WRITES)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": "Basic x"}],
    ids=["missing", "wrong-bearer", "wrong-header", "basic"],
)
def test_write_without_a_valid_key_is_401_and_changes_nothing(
    client: TestClient,
    product: dict[str, Any],
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
) -> None:
    response = client.request(method, path.format(id=product["id"]), json=body, headers=headers)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert client.get(f"/products/{product['id']}").json() == product
    assert client.get("/products").headers["x-total-count"] == "1"


@pytest.mark.usefixtures("with_api_keys")
@pytest.mark.parametrize(("method", "path", "body"), WRITES)
@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {KEYS[1]}"}, {"X-API-Key": KEYS[0]}],
    ids=["bearer", "x-api-key"],
)
def test_write_with_a_valid_key_succeeds(
    client: TestClient,
    product: dict[str, Any],
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
) -> None:
    response = client.request(method, path.format(id=product["id"]), json=body, headers=headers)

    assert response.status_code in (200, 201, 204), response.text


@pytest.mark.usefixtures("with_api_keys")
@pytest.mark.parametrize("path", ["/products", "/products/{id}", "/", "/health", "/health/ready"])
def test_reads_stay_public(client: TestClient, product: dict[str, Any], path: str) -> None:
    assert client.get(path.format(id=product["id"])).status_code == 200


@pytest.mark.usefixtures("with_api_keys")
@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}], ids=["missing", "wrong"])
def test_a_write_without_a_valid_key_is_401_whatever_its_body(
    client: TestClient, headers: dict[str, str]
) -> None:
    # The key is checked before the body's media type (a body sent as JSON that does not
    # parse is still a 400 first: FastAPI parses the body before it solves any dependency).
    response = client.post(
        "/products", content=b"name=Tee", headers={"Content-Type": "text/plain", **headers}
    )

    assert response.status_code == 401


def test_without_api_keys_writes_are_open(client: TestClient) -> None:
    assert client.post("/products", json={"name": "Tee", "price": 5}).status_code == 201


def test_startup_warns_once_when_writes_are_open(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING), TestClient(app):
        pass

    warnings = [record for record in caplog.records if "API_KEYS" in record.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


@pytest.mark.usefixtures("with_api_keys")
def test_keys_never_appear_in_logs(
    client: TestClient, product: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        client.patch(
            f"/products/{product['id']}", json={"price": 4}, headers={"X-API-Key": KEYS[0]}
        )
        client.post("/products", json={}, headers={"Authorization": "Bearer guessed-key-xyz"})
        client.delete(f"/products/{product['id']}", headers={"Authorization": f"Bearer {KEYS[1]}"})

    assert caplog.records
    for secret in [*KEYS, "guessed-key-xyz"]:
        assert secret not in caplog.text
