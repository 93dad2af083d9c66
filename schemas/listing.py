"""The query string of `GET /products`: filters, sort order and paging, validated up front."""

from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.product import FILTER_TEXT_PATTERN, INT4_MAX, PRICE_MAX, reject_control_characters

SortField = Literal["id", "name", "price", "quantity", "created_at", "updated_at"]
SORT_FIELDS: tuple[str, ...] = get_args(SortField)
LIST_LIMIT_MAX = 1000

_SORT_PATTERN = rf"^-?({'|'.join(SORT_FIELDS)})(,-?({'|'.join(SORT_FIELDS)}))*$"

FilterPrice = Annotated[
    Decimal,
    Field(ge=0, le=PRICE_MAX, allow_inf_nan=False, max_digits=12, decimal_places=2),
    WithJsonSchema(
        {"type": "number", "minimum": 0, "maximum": float(PRICE_MAX), "multipleOf": 0.01}
    ),
]


class SortKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: SortField
    descending: bool


class ProductQuery(BaseModel):
    """Every parameter of the listing; each one outside its range is a 422, never a 500."""

    skip: int = Field(default=0, ge=0, le=INT4_MAX, description="Rows to skip (offset paging).")
    limit: int = Field(default=100, ge=1, le=LIST_LIMIT_MAX, description="Page size.")
    cursor: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^[A-Za-z0-9_-]+$",
        description='Opaque token from a `Link: rel="next"` header (keyset paging).',
    )
    q: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        json_schema_extra={"pattern": FILTER_TEXT_PATTERN},
        description="Case-insensitive substring of `name` or `description`.",
    )
    sku: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9._-]{1,64}$", description="Exact sku."
    )
    min_price: FilterPrice | None = Field(default=None, description="Lowest price, inclusive.")
    max_price: FilterPrice | None = Field(default=None, description="Highest price, inclusive.")
    in_stock: bool | None = Field(
        default=None, description="`true`: quantity > 0; `false`: quantity = 0."
    )
    sort: str = Field(
        default="id",
        max_length=200,
        json_schema_extra={"pattern": _SORT_PATTERN},
        description=(
            "Comma-separated fields of `id, name, price, quantity, created_at, updated_at`; "
            "`-` for descending. Ties are broken by `id`."
        ),
        examples=["-price,name"],
    )

    @field_validator("q", mode="before")
    @classmethod
    def _printable_text(cls, value: object) -> object:
        # pydantic's own `pattern` runs on a regex engine without surrogates: checked here.
        return reject_control_characters(value)

    @field_validator("sort")
    @classmethod
    def _known_fields_once_each(cls, value: str) -> str:
        fields = [part.removeprefix("-") for part in value.split(",")]
        unknown = [field for field in fields if field not in SORT_FIELDS]
        if unknown:
            raise PydanticCustomError(
                "sort_field",
                "Unknown sort field '{field}'; sort by {allowed}, with '-' for descending",
                {"field": unknown[0], "allowed": ", ".join(SORT_FIELDS)},
            )
        if len(set(fields)) != len(fields):
            raise PydanticCustomError("sort_repeated", "Each sort field may appear only once")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "ProductQuery":
        if (
            self.min_price is not None
            and self.max_price is not None
            and self.min_price > self.max_price
        ):
            raise PydanticCustomError("price_range", "min_price must not exceed max_price")
        if self.cursor is not None and self.skip > 0:
            raise PydanticCustomError("cursor_with_skip", "cursor cannot be combined with skip")
        return self

    @property
    def sort_keys(self) -> tuple[SortKey, ...]:
        return tuple(
            SortKey.model_validate({"field": part.lstrip("-"), "descending": part[0] == "-"})
            for part in self.sort.split(",")
        )

    def filters(self) -> dict[str, Any]:
        """The filters as keyword arguments for `crud.products.list_products`."""
        return self.model_dump(include={"q", "sku", "min_price", "max_price", "in_stock"})
