"""Domain errors. Each carries the HTTP status it means; `api.problems` renders them."""

from http import HTTPStatus
from typing import Any


class CatalogError(Exception):
    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    type: str = "about:blank"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class ProductNotFound(CatalogError):
    status = HTTPStatus.NOT_FOUND

    def __init__(self, product_id: int) -> None:
        super().__init__(f"Product {product_id} does not exist")


class DuplicateSku(CatalogError):
    status = HTTPStatus.CONFLICT
    type = "urn:catalog:problem:duplicate-sku"

    def __init__(self, sku: str | None) -> None:
        super().__init__(f"A product with sku {sku!r} already exists", sku=sku)


class StaleVersion(CatalogError):
    status = HTTPStatus.PRECONDITION_FAILED
    type = "urn:catalog:problem:stale-version"

    def __init__(self, product_id: int, current_version: int) -> None:
        super().__init__(
            f"Product {product_id} is at version {current_version}; If-Match does not match",
            current_version=current_version,
        )
