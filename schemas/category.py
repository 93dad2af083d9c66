"""Category bodies, with the product's field types: `CategoryCreate`, `CategoryUpdate` in,
`CategoryRead` out."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.product import Description, Name, RequestBody


class CategoryCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Shoes", "description": "Every kind of shoe"}]}
    )

    name: Name
    description: Description | None = None


class CategoryUpdate(RequestBody):
    """Only the fields sent change; `null` clears `description` and is refused for `name`."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Footwear"}]})

    # (None here only marks "not sent": `model_dump(exclude_unset=True)` never passes it on.)
    name: Name = Field(default=None)  # type: ignore[assignment]
    description: Description | None = None


class CategoryRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        title="Category",
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "name": "Shirts",
                    "description": "T-shirts and shirts",
                    "created_at": "2026-11-20T09:15:02.118342Z",
                    "updated_at": "2026-11-20T09:15:02.118342Z",
                    "version": 1,
                }
            ]
        },
    )

    id: int
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime
    version: int
