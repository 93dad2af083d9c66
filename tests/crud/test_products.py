"""crud.products on its own: commits, domain errors, and a session still usable after them."""

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from crud import products as crud
from crud.errors import DuplicateSku, ProductNotFound, StaleVersion
from models import Product


def _create(db: Session, **values: object) -> Product:
    return crud.create_product(db, values={"name": "Lamp", "price": Decimal("12.50"), **values})


def _count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Product)) or 0


def test_create_product_commits_and_returns_server_set_columns(db: Session) -> None:
    product = _create(db, sku="LAMP-1")

    assert product.id is not None
    assert product.version == 1
    assert product.quantity == 0
    assert product.created_at is not None
    assert product.price == Decimal("12.50")
    assert not db.in_nested_transaction()


def test_duplicate_sku_raises_and_the_request_rollback_keeps_the_first(db: Session) -> None:
    _create(db, sku="LAMP-1")
    db.commit()

    with pytest.raises(DuplicateSku):
        _create(db, sku="LAMP-1")
    db.rollback()  # what the request's session dependency does with the error

    assert _count(db) == 1
    assert _create(db, sku="LAMP-2").sku == "LAMP-2"


def test_update_bumps_version_and_applies_only_the_changes(db: Session) -> None:
    product = _create(db, description="Old")

    updated = crud.update_product(db, product.id, changes={"price": Decimal("15.00")})

    assert updated.version == 2
    assert updated.price == Decimal("15.00")
    assert updated.description == "Old"
    assert updated.updated_at > updated.created_at


def test_update_with_stale_version_raises_and_changes_nothing(db: Session) -> None:
    product = _create(db)
    crud.update_product(db, product.id, changes={"quantity": 3})

    with pytest.raises(StaleVersion) as raised:
        crud.update_product(db, product.id, changes={"quantity": 9}, expected_versions={1})

    assert raised.value.extra == {"current_version": 2}
    assert crud.get_product(db, product.id).quantity == 3


def test_an_update_with_no_changes_is_refused_on_the_one_row_it_read(db: Session) -> None:
    product = _create(db)
    crud.update_product(db, product.id, changes={"quantity": 3})
    db.expire_all()  # the row is read from the database, not the session's identity map
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    connection = db.connection()
    event.listen(connection, "before_cursor_execute", record)
    try:
        with pytest.raises(StaleVersion) as raised:
            crud.update_product(db, product.id, changes={}, expected_versions={1})
    finally:
        event.remove(connection, "before_cursor_execute", record)

    # One read, and the 412 names the version that read compared (a second read could see a
    # later one).
    assert len(sent) == 1
    assert raised.value.extra == {"current_version": 2}


def test_update_of_missing_product_raises_not_found(db: Session) -> None:
    with pytest.raises(ProductNotFound):
        crud.update_product(db, 987654, changes={"quantity": 1})


def test_update_to_taken_sku_raises_duplicate(db: Session) -> None:
    _create(db, sku="A")
    product = _create(db, sku="B")

    with pytest.raises(DuplicateSku):
        crud.update_product(db, product.id, changes={"sku": "A"})

    assert crud.get_product(db, product.id).sku == "B"


def test_delete_removes_the_row(db: Session) -> None:
    product = _create(db)

    crud.delete_product(db, product.id)

    assert _count(db) == 0
    with pytest.raises(ProductNotFound):
        crud.delete_product(db, product.id)


def test_delete_with_stale_version_raises_and_keeps_the_row(db: Session) -> None:
    product = _create(db)

    with pytest.raises(StaleVersion):
        crud.delete_product(db, product.id, expected_versions={5})

    assert _count(db) == 1
