"""Listing query strings: paging and sort for every resource, and each resource's filters."""

from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from models.category import CATEGORY_SORTABLE_FIELDS
from models.product import INT4_MAX, SORTABLE_FIELDS
from schemas.product import FILTER_TEXT_PATTERN, PRICE_MAX, reject_control_characters


def sort_parameter(fields: Sequence[str]) -> Any:
    """The `sort` query parameter of a listing whose rows can be sorted by `fields`."""
    names = "|".join(fields)
    return Field(
        default="id",
        max_length=200,
        json_schema_extra={"pattern": rf"^-?({names})(,-?({names}))*$"},
        description=(
            f"Comma-separated fields of `{', '.join(fields)}`; `-` for descending. "
            "Ties are broken by `id`."
        ),
        examples=["-id"],
    )


class ListQuery(BaseModel):
    """Offset or cursor paging and a sort; a resource's query adds its filters, its
    `SORT_FIELDS` and `sort: str = sort_parameter(SORT_FIELDS)`."""

    # A parameter the listing does not know (`min_prce`, `page`) is a 422 naming it, as an
    # unknown body field is: a misspelt filter must never return the unfiltered catalog.
    model_config = ConfigDict(extra="forbid")

    SORT_FIELDS: ClassVar[tuple[str, ...]] = ("id",)

    skip: int = Field(default=0, ge=0, le=INT4_MAX, description="Rows to skip (offset paging).")
    limit: int = Field(default=100, ge=1, le=1000, description="Page size.")
    cursor: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^[A-Za-z0-9_-]+$",
        description='Opaque token from a `Link: rel="next"` header (keyset paging).',
    )
    sort: str = sort_parameter(SORT_FIELDS)

    @field_validator("sort")
    @classmethod
    def _known_fields_once_each(cls, value: str) -> str:
        fields = [part.removeprefix("-") for part in value.split(",")]
        unknown = [field for field in fields if field not in cls.SORT_FIELDS]
        if unknown:
            raise PydanticCustomError(
                "sort_field",
                "Unknown sort field '{field}'; sort by {allowed}, with '-' for descending",
                {"field": unknown[0], "allowed": ", ".join(cls.SORT_FIELDS)},
            )
        if len(set(fields)) != len(fields):
            raise PydanticCustomError("sort_repeated", "Each sort field may appear only once")
        return value

    @model_validator(mode="after")
    def _cursor_or_skip(self) -> Self:
        if self.cursor is not None and self.skip > 0:
            raise PydanticCustomError("cursor_with_skip", "cursor cannot be combined with skip")
        return self

    @property
    def sort_order(self) -> list[tuple[str, bool]]:
        """The sort as (field, descending) pairs."""
        return [(part.lstrip("-"), part.startswith("-")) for part in self.sort.split(",")]

    def filters(self) -> dict[str, Any]:
        """The filters: every parameter that is not about paging or order."""
        return self.model_dump(exclude={"skip", "limit", "cursor", "sort", "expand"})


SearchText = Annotated[
    str,
    Field(min_length=1, max_length=200, json_schema_extra={"pattern": FILTER_TEXT_PATTERN}),
    # pydantic's own `pattern` runs on a regex engine without surrogates: checked here.
    BeforeValidator(reject_control_characters),
]

FilterPrice = Annotated[
    Decimal,
    Field(ge=0, le=PRICE_MAX, allow_inf_nan=False, max_digits=12, decimal_places=2),
    WithJsonSchema(
        {"type": "number", "minimum": 0, "maximum": float(PRICE_MAX), "multipleOf": 0.01}
    ),
]


Expand = Literal["category"]
EXPAND_DESCRIPTION = "`category`: embed each product's category as `{id, name}` (or null)."


class ProductQuery(ListQuery):
    """The query string of `GET /products`."""

    SORT_FIELDS = SORTABLE_FIELDS

    sort: str = sort_parameter(SORTABLE_FIELDS)
    q: SearchText | None = Field(
        default=None, description="Case-insensitive substring of `name` or `description`."
    )
    sku: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9._-]{1,64}$", description="Exact sku."
    )
    min_price: FilterPrice | None = Field(default=None, description="Lowest price, inclusive.")
    max_price: FilterPrice | None = Field(default=None, description="Highest price, inclusive.")
    in_stock: bool | None = Field(
        default=None, description="`true`: quantity > 0; `false`: quantity = 0."
    )
    category_id: int | None = Field(
        default=None, ge=1, le=INT4_MAX, description="Only the products of this category."
    )
    expand: Expand | None = Field(default=None, description=EXPAND_DESCRIPTION)

    @model_validator(mode="after")
    def _price_range(self) -> Self:
        low, high = self.min_price, self.max_price
        if low is not None and high is not None and low > high:
            raise PydanticCustomError("price_range", "min_price must not exceed max_price")
        return self


class CategoryQuery(ListQuery):
    """The query string of `GET /categories`."""

    SORT_FIELDS = CATEGORY_SORTABLE_FIELDS

    sort: str = sort_parameter(CATEGORY_SORTABLE_FIELDS)
    q: SearchText | None = Field(default=None, description="Case-insensitive substring of `name`.")
