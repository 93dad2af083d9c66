"""`Idempotency-Key` on the POSTs: a retry gets the kept answer and changes nothing.

The races and crashes run against a real server: tests/api/test_idempotency_live.py.
"""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import api.idempotency
import crud.idempotency
import crud.products
from config import get_settings
from crud.idempotency import KEYS, KeyedRequest, purge_expired
from dependencies.access import ANYONE
from models import Category, Product

PRODUCTS = Product.__table__

MakeProduct = Callable[..., dict[str, Any]]
API_KEYS = ["first-key-0123456789", "second-key-abcdefghij"]
TEE = {"name": "Tee", "price": 5, "quantity": 3}


def _post(client: TestClient, path: str, body: Any, key: str | None, **headers: str) -> Response:
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(path, json=body, headers=headers)


def _count(db: Session, table: Any = PRODUCTS) -> int:
    return db.execute(select(func.count()).select_from(table)).scalar_one()


def _quantity(client: TestClient, product: dict[str, Any]) -> int:
    quantity: int = client.get(f"/products/{product['id']}").json()["quantity"]
    return quantity


def _assert_replay_of(replay: Response, first: Response) -> None:
    assert replay.status_code == first.status_code
    assert replay.content == first.content
    assert replay.headers["content-type"] == first.headers["content-type"]
    for header in ("location", "etag"):
        assert replay.headers.get(header) == first.headers.get(header)
    assert replay.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers


# Replays ---------------------------------------------------------------------------------


def test_create_retried_with_its_key_is_the_same_201_and_one_product(
    client: TestClient, db: Session
) -> None:
    before = _count(db)

    first = _post(client, "/products", TEE, "create-1")
    replay = _post(client, "/products", TEE, "create-1")

    assert first.status_code == 201
    assert first.headers["location"] == f"/products/{first.json()['id']}"
    _assert_replay_of(replay, first)
    assert _count(db) == before + 1


def test_a_category_create_retried_with_its_key_is_the_same_201_and_one_category(
    client: TestClient, db: Session
) -> None:
    categories = Category.__table__
    before = _count(db, categories)

    first = _post(client, "/categories", {"name": "Retried"}, "category-1")
    replay = _post(client, "/categories", {"name": "Retried"}, "category-1")

    assert first.status_code == 201
    assert first.headers["location"] == f"/categories/{first.json()['id']}"
    _assert_replay_of(replay, first)
    assert _count(db, categories) == before + 1


def test_create_without_a_key_is_not_deduplicated(client: TestClient, db: Session) -> None:
    before = _count(db)

    answers = [client.post("/products", json=TEE) for _ in range(2)]

    assert [answer.status_code for answer in answers] == [201, 201]
    assert all("idempotent-replayed" not in answer.headers for answer in answers)
    assert _count(db) == before + 2


def test_stock_taken_five_times_under_one_key_takes_one(
    client: TestClient, make_product: MakeProduct
) -> None:
    product = make_product(quantity=10)
    path = f"/products/{product['id']}/stock"

    answers = [_post(client, path, {"delta": -1}, "take-one") for _ in range(5)]

    assert answers[0].status_code == 200
    assert answers[0].json()["quantity"] == 9
    for replay in answers[1:]:
        _assert_replay_of(replay, answers[0])
    assert _quantity(client, product) == 9


def test_bulk_replay_creates_nothing(client: TestClient, db: Session) -> None:
    batch = [{"name": f"Bulk {i}", "price": 2} for i in range(3)]
    first = _post(client, "/products/bulk", batch, "bulk-1")
    after_first = _count(db)

    replay = _post(client, "/products/bulk", batch, "bulk-1")

    assert first.status_code == 201
    _assert_replay_of(replay, first)
    assert _count(db) == after_first


def test_a_key_is_one_request_whatever_the_route(
    client: TestClient, make_product: MakeProduct
) -> None:
    product = make_product(quantity=4)
    first = _post(client, f"/products/{product['id']}/stock", {"delta": 1}, "shared-key")

    same_body_other_product = _post(
        client, f"/products/{make_product()['id']}/stock", {"delta": 1}, "shared-key"
    )

    assert first.status_code == 200
    assert same_body_other_product.status_code == 422
    assert same_body_other_product.json()["type"] == "urn:catalog:problem:idempotency-key-reused"


# What is kept ----------------------------------------------------------------------------


def test_same_key_with_another_body_is_422_and_changes_nothing(
    client: TestClient, db: Session
) -> None:
    first = _post(client, "/products", TEE, "reused")
    before = _count(db)

    other = _post(client, "/products", {**TEE, "name": "Other"}, "reused")

    assert first.status_code == 201
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"] == "urn:catalog:problem:idempotency-key-reused"
    assert _count(db) == before
    _assert_replay_of(_post(client, "/products", TEE, "reused"), first)


@pytest.mark.parametrize(
    "key",
    ["", " ", "has space", "x" * 256, "tab\there", "caf\u00e9", "\u00a0nbsp"],
    ids=["empty", "blank", "space", "256-chars", "tab", "non-ascii", "nbsp"],
)
def test_a_malformed_key_is_400_and_changes_nothing(
    client: TestClient, db: Session, key: str
) -> None:
    before = _count(db)

    raw_header = [(b"Idempotency-Key", key.encode("latin-1"))]
    response = client.post("/products", json=TEE, headers=raw_header)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "Idempotency-Key" in response.json()["detail"]
    assert _count(db) == before + 0
    assert _count(db, KEYS) == 0


def test_a_key_sent_twice_is_400(client: TestClient, db: Session) -> None:
    response = client.post(
        "/products", json=TEE, headers=[("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    )

    assert response.status_code == 400
    assert _count(db, KEYS) == 0


@pytest.mark.parametrize("key", ["!", "~", "k" * 255, '"8e03978e-40d5-43e8-bc93-6894a57f9324"'])
def test_keys_of_1_to_255_visible_characters_are_accepted(client: TestClient, key: str) -> None:
    first = _post(client, "/products", TEE, key)

    assert first.status_code == 201
    _assert_replay_of(_post(client, "/products", TEE, key), first)


def test_a_body_refused_before_the_write_keeps_nothing(client: TestClient, db: Session) -> None:
    invalid = _post(client, "/products", {**TEE, "price": -1}, "fix-me")
    not_json = client.post(
        "/products",
        content=b"{oops",
        headers={"Idempotency-Key": "fix-me", "Content-Type": "application/json"},
    )
    not_a_json_type = client.post(
        "/products", content=b"x", headers={"Idempotency-Key": "fix-me", "Content-Type": "text/a"}
    )
    corrected = _post(client, "/products", TEE, "fix-me")

    assert [invalid.status_code, not_json.status_code, not_a_json_type.status_code] == [
        422,
        400,
        415,
    ]
    assert corrected.status_code == 201
    assert "idempotent-replayed" not in corrected.headers
    assert _count(db, KEYS) == 1


def test_a_5xx_keeps_nothing_and_the_retry_writes(
    client: TestClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*_: Any, **__: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    with monkeypatch.context() as patched:
        patched.setattr(crud.products, "create_product", unavailable)
        failed = _post(client, "/products", TEE, "after-outage")
    retried = _post(client, "/products", TEE, "after-outage")

    assert failed.status_code == 503
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers


def test_the_write_commits_only_with_its_kept_answer(
    client: TestClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def connection_lost(*_: Any, **__: Any) -> None:
        raise OperationalError("UPDATE", {}, Exception("server closed the connection"))

    before = _count(db)
    with monkeypatch.context() as patched:
        patched.setattr(crud.idempotency, "keep", connection_lost)
        failed = _post(client, "/products", TEE, "not-kept")

    assert failed.status_code == 503
    assert _count(db) == before
    assert _count(db, KEYS) == 0


def test_stock_on_a_missing_product_keeps_the_404(client: TestClient, db: Session) -> None:
    first = _post(client, "/products/2000000000/stock", {"delta": 1}, "missing")

    replay = _post(client, "/products/2000000000/stock", {"delta": 1}, "missing")

    assert first.status_code == 404
    _assert_replay_of(replay, first)


def test_insufficient_stock_keeps_the_409_even_once_stock_is_back(
    client: TestClient, make_product: MakeProduct
) -> None:
    product = make_product(quantity=0)
    path = f"/products/{product['id']}/stock"
    first = _post(client, path, {"delta": -1}, "too-early")
    assert client.post(path, json={"delta": 5}).status_code == 200

    replay = _post(client, path, {"delta": -1}, "too-early")

    assert first.status_code == 409
    assert first.json()["type"] == "urn:catalog:problem:insufficient-stock"
    _assert_replay_of(replay, first)
    assert _quantity(client, product) == 5


def test_a_stale_if_match_keeps_the_412(client: TestClient, make_product: MakeProduct) -> None:
    product = make_product(quantity=3)
    path = f"/products/{product['id']}/stock"
    stale = {"If-Match": '"7"'}

    first = _post(client, path, {"delta": 1}, "stale", **stale)
    replay = _post(client, path, {"delta": 1}, "stale", **stale)

    assert first.status_code == 412
    _assert_replay_of(replay, first)
    assert _quantity(client, product) == 3


def test_a_duplicate_sku_keeps_the_409(client: TestClient, make_product: MakeProduct) -> None:
    make_product(sku="TAKEN-1")
    body = {**TEE, "sku": "TAKEN-1"}

    first = _post(client, "/products", body, "dup")
    replay = _post(client, "/products", body, "dup")
    bulk = _post(client, "/products/bulk", [body], "dup-bulk")
    bulk_replay = _post(client, "/products/bulk", [body], "dup-bulk")

    assert first.status_code == 409
    _assert_replay_of(replay, first)
    assert bulk.status_code == 409
    _assert_replay_of(bulk_replay, bulk)


# Whose keys ------------------------------------------------------------------------------


@pytest.fixture
def with_api_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(get_settings(), "api_keys", API_KEYS)
    yield


@pytest.mark.usefixtures("with_api_keys")
def test_two_callers_with_the_same_key_get_their_own_products(
    client: TestClient, db: Session
) -> None:
    first, second = (
        _post(client, "/products", TEE, "same-key", **{"X-API-Key": api_key})
        for api_key in API_KEYS
    )
    second_again = _post(
        client, "/products", TEE, "same-key", Authorization=f"Bearer {API_KEYS[1]}"
    )

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert "idempotent-replayed" not in second.headers
    _assert_replay_of(second_again, second)
    callers = set(db.scalars(select(KEYS.c.caller)))
    assert len(callers) == 2
    assert not callers & {*API_KEYS, ANYONE}  # a digest, never the key


@pytest.mark.usefixtures("with_api_keys")
def test_a_key_without_a_valid_api_key_is_401_and_keeps_nothing(
    client: TestClient, db: Session
) -> None:
    response = _post(client, "/products", TEE, "no-auth", **{"X-API-Key": "wrong"})

    assert response.status_code == 401
    assert _count(db, KEYS) == 0


def test_a_batch_refused_before_its_first_statement_keeps_the_409(
    client: TestClient, db: Session
) -> None:
    # Refused in Python (the same sku twice), before any statement could carry the claim.
    body = [{**TEE, "sku": "TWICE-1"}, {**TEE, "sku": "TWICE-1"}]

    first = _post(client, "/products/bulk", body, "twice")
    replay = _post(client, "/products/bulk", body, "twice")

    assert first.status_code == 409
    _assert_replay_of(replay, first)
    assert _count(db, KEYS) == 1


# Expiry ----------------------------------------------------------------------------------


def _kept_row(db: Session, key: str, *, expires_at: datetime, caller: str = ANYONE) -> None:
    db.execute(
        insert(KEYS).values(
            caller=caller,
            key=key,
            fingerprint="0" * 64,
            status=201,
            location="/products/1",
            etag='"1"',
            body=b"{}",
            created_at=expires_at - timedelta(days=1),
            expires_at=expires_at,
        )
    )
    db.commit()


def test_an_expired_key_is_a_new_key(client: TestClient, db: Session) -> None:
    _kept_row(db, "old", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    before = _count(db)

    response = _post(client, "/products", TEE, "old")

    assert response.status_code == 201
    assert "idempotent-replayed" not in response.headers
    assert _count(db) == before + 1
    _assert_replay_of(_post(client, "/products", TEE, "old"), response)


def test_a_key_is_kept_for_idempotency_ttl_s(client: TestClient, db: Session) -> None:
    started = datetime.now(UTC)
    _post(client, "/products", TEE, "kept")

    expires_at = db.execute(select(KEYS.c.expires_at)).scalar_one()

    ttl = timedelta(seconds=get_settings().idempotency_ttl_s)
    assert ttl == timedelta(hours=24)
    assert started + ttl <= expires_at <= datetime.now(UTC) + ttl


def test_purge_deletes_a_bounded_batch_of_expired_keys_oldest_first(db: Session) -> None:
    now = datetime.now(UTC)
    for minutes in range(1, 6):
        _kept_row(db, f"expired-{minutes}", expires_at=now - timedelta(minutes=minutes))
    _kept_row(db, "live", expires_at=now + timedelta(minutes=1))

    deleted = purge_expired(db, now=now, limit=3)

    assert deleted == 3
    assert set(db.scalars(select(KEYS.c.key))) == {"expired-1", "expired-2", "live"}
    assert purge_expired(db, now=now, limit=3) == 2
    assert list(db.scalars(select(KEYS.c.key))) == ["live"]


def test_keyed_writes_purge_expired_keys_now_and_then(
    client: TestClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    _kept_row(db, "expired", expires_at=datetime.now(UTC) - timedelta(minutes=1))
    monkeypatch.setattr(api.idempotency, "PURGE_EVERY", 1)

    assert _post(client, "/products", TEE, "fresh").status_code == 201

    assert list(db.scalars(select(KEYS.c.key))) == ["fresh"]


# In flight -------------------------------------------------------------------------------


@pytest.mark.postgres_only
def test_a_key_held_by_a_request_in_flight_is_409_with_retry_after(
    client: TestClient, db: Session, connection: Connection
) -> None:
    # Another connection is carrying out a request with this key: it holds the key's lock.
    in_flight = KeyedRequest(ANYONE, "busy", "")
    with connection.engine.connect() as other, other.begin():
        other.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": in_flight.lock_id})
        before = _count(db)

        response = _post(client, "/products", TEE, "busy")

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:catalog:problem:idempotency-key-in-use"
    assert int(response.headers["retry-after"]) >= 1
    assert _count(db) == before
    assert _post(client, "/products", TEE, "busy").status_code == 201  # the lock is gone


def test_keyed_request_lock_ids_differ_by_caller_and_key() -> None:
    ids = {KeyedRequest(c, k, "").lock_id for c in ("a", "b") for k in ("x", "y")}

    assert len(ids) == 4
    assert all(-(2**63) <= lock_id < 2**63 for lock_id in ids)


# The contract in OpenAPI -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/products", "201"),
        ("/products/bulk", "201"),
        ("/products/{product_id}/stock", "200"),
        ("/categories", "201"),
    ],
)
def test_openapi_documents_the_key_on_every_keyed_post(
    client: TestClient, path: str, status: str
) -> None:
    operation = client.get("/openapi.json").json()["paths"][path]["post"]

    header = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header"
    assert header["required"] is False
    assert header["schema"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": api.idempotency.KEY_PATTERN,
    }
    responses = operation["responses"]
    assert "Idempotent-Replayed" in responses[status]["headers"]
    assert "Idempotency-Key" in responses["409"]["description"]
    assert "Retry-After" in responses["409"]["headers"]
    assert "Idempotency-Key" in responses["422"]["description"]
    assert "Idempotency-Key" in responses["400"]["description"]


def test_openapi_has_no_key_on_other_writes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    for path in ("/products/{product_id}", "/categories/{category_id}"):
        for method in ("put", "patch", "delete"):
            names = [p["name"] for p in paths[path][method].get("parameters", [])]
            assert "Idempotency-Key" not in names
