"""Domain errors. Each carries the HTTP status it means; `api.problems` renders them."""

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any


class CatalogError(Exception):
    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    type: str = "about:blank"
    title: str | None = None  # None: the status's own phrase
    headers: dict[str, str] = {}  # noqa: RUF012 (read-only: the response headers it needs)

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(CatalogError):
    status = HTTPStatus.NOT_FOUND
    resource = "Row"

    def __init__(self, row_id: int) -> None:
        super().__init__(f"{self.resource} {row_id} does not exist")


class ProductNotFound(NotFound):
    resource = "Product"


class CategoryNotFound(NotFound):
    resource = "Category"


class StaleVersion(CatalogError):
    status = HTTPStatus.PRECONDITION_FAILED
    type = "urn:catalog:problem:stale-version"
    title = "Stale version"

    def __init__(self, resource: str, row_id: int, current_version: int) -> None:
        super().__init__(
            f"{resource} {row_id} is at version {current_version}; If-Match does not match",
            current_version=current_version,
        )


class SchemaNotReady(CatalogError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    type = "urn:catalog:problem:schema-not-ready"
    title = "Schema not ready"
    headers = {"Retry-After": "30"}  # noqa: RUF012

    def __init__(self, current: str | None, required: str | None) -> None:
        super().__init__(
            f"The database schema is at {current or 'no revision (never migrated)'}, this "
            f"release needs {required}: run migrations (alembic upgrade head)",
            current_revision=current,
            required_revision=required,
        )


class DuplicateSku(CatalogError):
    status = HTTPStatus.CONFLICT
    type = "urn:catalog:problem:duplicate-sku"
    title = "Duplicate SKU"

    def __init__(self, sku: str | None) -> None:
        super().__init__(f"A product with sku {sku!r} already exists", sku=sku)


class DuplicateCategoryName(CatalogError):
    status = HTTPStatus.CONFLICT
    type = "urn:catalog:problem:duplicate-category-name"
    title = "Duplicate category name"

    def __init__(self, name: str | None) -> None:
        super().__init__(
            f"A category with name {name!r} already exists (names are compared ignoring case)",
            name=name,
        )


class UnknownCategory(CatalogError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    type = "urn:catalog:problem:unknown-category"
    title = "Unknown category"

    def __init__(self, category_ids: Mapping[int | None, int | None]) -> None:
        """`category_ids`: each unknown id by its body's index in a bulk (None: the one body)."""
        errors = [
            {
                "loc": ["body", *([] if index is None else [index]), "category_id"],
                "msg": f"Category {category_id} does not exist",
                "type": "unknown_category",
            }
            for index, category_id in category_ids.items()
        ]
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        where = ".".join(str(part) for part in first["loc"])
        super().__init__(f"{where}: {first['msg']}{more}", errors=errors)


class CategoryInUse(CatalogError):
    status = HTTPStatus.CONFLICT
    type = "urn:catalog:problem:category-in-use"
    title = "Category in use"

    def __init__(self, category_id: int, products: int) -> None:
        named = f"{products} product{'' if products == 1 else 's'}" if products else "products"
        super().__init__(
            f"Category {category_id} is still named by {named}: move or delete them first",
            products=products,
        )


class DuplicateSkuInBatch(CatalogError):
    status = HTTPStatus.CONFLICT
    type = "urn:catalog:problem:duplicate-sku"
    title = "Duplicate SKU"

    def __init__(self, conflicts: dict[int, str], *, reason: str) -> None:
        indexes = ", ".join(str(index) for index in conflicts)
        super().__init__(
            f"Item{'s' if len(conflicts) > 1 else ''} {indexes}: sku {reason}",
            errors=[
                {"loc": ["body", index, "sku"], "msg": f"sku {sku!r} {reason}", "type": "duplicate"}
                for index, sku in conflicts.items()
            ],
        )


class InsufficientStock(CatalogError):
    status = HTTPStatus.CONFLICT
    type = "urn:catalog:problem:insufficient-stock"
    title = "Insufficient stock"

    def __init__(self, product_id: int, quantity: int, delta: int) -> None:
        super().__init__(
            f"Product {product_id} has {quantity} in stock; a change of {delta} would leave "
            + ("less than 0" if delta < 0 else "more than the maximum quantity"),
            quantity=quantity,
        )


class IdempotencyKeyInUse(CatalogError):
    status = HTTPStatus.CONFLICT
    type = "urn:catalog:problem:idempotency-key-in-use"
    title = "Idempotency key in use"
    headers = {"Retry-After": "1"}  # noqa: RUF012

    def __init__(self) -> None:
        super().__init__(
            "A request with this Idempotency-Key is still being carried out; retry shortly"
        )


class IdempotencyKeyReused(CatalogError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    type = "urn:catalog:problem:idempotency-key-reused"
    title = "Idempotency key reused"

    def __init__(self) -> None:
        message = (
            "This Idempotency-Key was used for a different request (method, path or body);"
            " use a new key for a new request"
        )
        error = {"loc": ["header", "Idempotency-Key"], "msg": message, "type": "key_reused"}
        super().__init__(message, errors=[error])
