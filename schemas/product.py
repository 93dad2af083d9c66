"""Product bodies: `ProductCreate`, `ProductUpdate` in, `ProductRead` out. Field limits mirror
the columns of `models.product`, so bad input is a 422 before any SQL runs."""

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from itertools import islice
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from models.product import DESCRIPTION_MAX_LENGTH, INT4_MAX, NAME_MAX_LENGTH, SKU_MAX_LENGTH

PRICE_MAX = Decimal("99999999.99")
# Unknown fields are errors, one each; an object with more than this many fields beyond the
# known ones is refused as a whole, with one error (docs/api.md, "Limits").
MAX_UNKNOWN_FIELDS = 50

# The documented patterns (lone surrogates are not characters: JSON Schema need not name them).
# No control characters, and not blank: at least one character besides whitespace.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
NAME_PATTERN = rf"^[^{_CONTROL}]*[^\s{_CONTROL}][^{_CONTROL}]*$"
FILTER_TEXT_PATTERN = rf"^[^{_CONTROL}]*$"
TEXT_PATTERN = r"^[^\x00]*$"


def _refusing(characters: str, error: str, what: str) -> Callable[[Any], Any]:
    # Lone UTF-16 surrogates can arrive through JSON escapes ("\ud800") but cannot be stored
    # as UTF-8: every text field refuses them too.
    search = re.compile(rf"[{characters}\ud800-\udfff]").search

    def refuse(value: Any) -> Any:
        if isinstance(value, str) and search(value):
            raise PydanticCustomError(error, f"String should not contain {what} or lone surrogates")
        return value

    return refuse


reject_control_characters = _refusing(_CONTROL, "string_control_characters", "control characters")
_reject_unstorable = _refusing(r"\x00", "string_unstorable", "NUL characters")


def _integral(value: Any) -> Any:
    # JSON does not tell 7 from 7.0, and JSON Schema calls both integers: accept a float with
    # no fractional part as the integer it is; anything else goes on to the strict check.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _require_json_number(value: Any) -> Any:
    # pydantic would take "19.99" or true for a Decimal; the contract says a JSON number.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise PydanticCustomError("number_type", "Input should be a number")
    return value


Sku = Annotated[
    str,
    StringConstraints(strict=True, pattern=r"^[A-Za-z0-9._-]{1,64}$", max_length=SKU_MAX_LENGTH),
    Field(description="Stock-keeping unit, unique across products.", examples=["TSHIRT-RED-M"]),
]
Name = Annotated[
    str,
    StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH),
    # Listed after the constraints so that it runs first, on the raw input; listed before them,
    # pydantic would check the length before stripping.
    BeforeValidator(reject_control_characters),
    Field(
        description="Trimmed of surrounding whitespace; no control characters.",
        examples=["Red T-shirt"],
        json_schema_extra={"pattern": NAME_PATTERN},
    ),
]
Description = Annotated[
    str,
    StringConstraints(strict=True, max_length=DESCRIPTION_MAX_LENGTH),
    BeforeValidator(_reject_unstorable),
    Field(json_schema_extra={"pattern": TEXT_PATTERN}),
]
_PRICE_SCHEMA = {
    "type": "number",
    "exclusiveMinimum": 0,
    "maximum": float(PRICE_MAX),
    "multipleOf": 0.01,
    "description": "Exact to the cent (at most 2 decimal places).",
    "examples": [19.99],
}
Price = Annotated[
    Decimal,
    BeforeValidator(_require_json_number),
    Field(max_digits=10, decimal_places=2, gt=0, le=PRICE_MAX, allow_inf_nan=False),
    # A JSON number, not pydantic's string: with at most 10 significant digits, the float's
    # shortest repr is exactly the decimal's text.
    PlainSerializer(float, return_type=float, when_used="json"),
    WithJsonSchema(_PRICE_SCHEMA),
]
Quantity = Annotated[
    int, Field(strict=True, ge=0, le=INT4_MAX, examples=[10]), BeforeValidator(_integral)
]
CategoryId = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=INT4_MAX,
        description="The id of an existing category (`null`: none).",
        examples=[3],
    ),
    BeforeValidator(_integral),
]


_TOO_MANY_FIELDS = ("too_many_fields", f"More than {MAX_UNKNOWN_FIELDS} unknown fields")


class _ClosedObject(BaseModel):
    """A request body object whose unknown fields are errors: a few are listed, many refused."""

    model_config = ConfigDict(extra="forbid")
    # Fields a client may send back from what it read: accepted, and ignored.
    ignored: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        # Every body goes through here: one loop, no helper (bench/request_path.py).
        if not isinstance(data, dict):
            return data
        known, unknown, kept = cls.model_fields.keys(), 0, {}
        for field, value in data.items():
            if field in cls.ignored:
                continue
            if field not in known:
                unknown += 1
                if unknown > MAX_UNKNOWN_FIELDS:
                    raise PydanticCustomError(*_TOO_MANY_FIELDS)
            kept[field] = value
        return kept


class RequestBody(_ClosedObject):
    """Every create and update body: read-only fields are ignored (the server owns them)."""

    ignored = frozenset({"id", "version", "created_at", "updated_at"})


_EXAMPLE: dict[str, Any] = {
    "sku": "TSHIRT-RED-M",
    "name": "Red T-shirt",
    "description": "Cotton, medium",
    "price": 19.99,
    "quantity": 10,
}


class ProductCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{**_EXAMPLE, "category_id": None}]})

    sku: Sku | None = None
    name: Name
    description: Description | None = None
    price: Price
    quantity: Quantity = 0
    category_id: CategoryId | None = None


class ProductUpdate(RequestBody):
    """Only the fields sent change; `null` clears `description`, `sku` and `category_id` and is
    refused elsewhere."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"price": 17.5, "quantity": 8}]})

    # Required columns have no `| None`: an explicit null is a 422, leaving one out is fine.
    sku: Sku | None = None
    # (None here only marks "not sent": `model_dump(exclude_unset=True)` never passes it on.)
    name: Name = Field(default=None)  # type: ignore[assignment]
    description: Description | None = None
    price: Price = Field(default=None)  # type: ignore[assignment]
    quantity: Quantity = Field(default=None)  # type: ignore[assignment]
    category_id: CategoryId | None = None


# What the database hands back is trusted: no input rules. A float, exact for a NUMERIC(10,2)
# (see Price), converted while validating so the serialiser makes no Python calls.
StoredPrice = Annotated[float, WithJsonSchema(_PRICE_SCHEMA)]


class CategorySummary(BaseModel):
    """What a product embeds of its category with `expand=category`."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str


class ProductFields(BaseModel):
    """What every product answer carries: the row's columns."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    sku: str | None
    name: str
    description: str | None
    price: StoredPrice
    quantity: int
    # UTC datetimes (models.columns.UTCDateTime), which pydantic writes as RFC 3339 with "Z".
    created_at: datetime
    updated_at: datetime
    version: int
    category_id: int | None


# A product as the API documents it. Answers without `expand=category` are written from
# `ProductFields`, so they have no `category` at all, and validating a record looks up no
# attribute it does not have. (A comment: a docstring would become the schema's description.)
class ProductRead(ProductFields):
    model_config = ConfigDict(
        title="Product",
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    **_EXAMPLE,
                    "created_at": "2026-11-25T11:42:25.417035Z",
                    "updated_at": "2026-11-26T08:03:51.220914Z",
                    "version": 3,
                    "category_id": 7,
                }
            ]
        },
    )

    category: CategorySummary | None = Field(
        default=None,
        description="With `expand=category` only: the product's category, or null if none.",
    )


def _reject_zero(value: int) -> int:
    if value == 0:
        raise PydanticCustomError("delta_zero", "A stock change of 0 changes nothing")
    return value


class StockChange(_ClosedObject):
    model_config = ConfigDict(json_schema_extra={"examples": [{"delta": -1}]})

    delta: Annotated[
        int,
        Field(
            strict=True,
            ge=-INT4_MAX - 1,
            le=INT4_MAX,
            description="Added to the quantity (negative to take stock out); never 0.",
            json_schema_extra={"not": {"const": 0}},
        ),
        AfterValidator(_reject_zero),
        BeforeValidator(_integral),
    ]


def _bounded_batch(items: Any) -> Any:
    # Per item, the limit would still let a batch of 1000 carry 50 unknown fields each. And
    # pydantic builds an error for every unknown field before reporting any: a 1 MiB body of
    # them would cost far more than any valid body. Counting first stops at the limit.
    if isinstance(items, list):
        known = ProductCreate.model_fields.keys() | ProductCreate.ignored
        fields = (key for item in items if isinstance(item, dict) for key in item)
        unknown = (field for field in fields if field not in known)
        if next(islice(unknown, MAX_UNKNOWN_FIELDS, None), None) is not None:
            raise PydanticCustomError(*_TOO_MANY_FIELDS)
    return items


ProductBatch = Annotated[
    list[ProductCreate],
    Field(min_length=1, max_length=1000, description="1 to 1000 products."),
    # Last, so outermost: it runs first, and the length is still checked before any item.
    BeforeValidator(_bounded_batch),
]
