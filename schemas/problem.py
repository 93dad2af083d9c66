"""RFC 9457 problem details: the one shape of every error response."""

from pydantic import BaseModel, ConfigDict, Field


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="Where: `body`/`query`/`path`, then field names.")
    msg: str
    type: str


class Problem(BaseModel):
    model_config = ConfigDict(
        title="Problem",
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Not Found",
                    "status": 404,
                    "detail": "Product 42 does not exist",
                    "instance": "/products/42",
                }
            ]
        },
    )

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    errors: list[ValidationIssue] | None = Field(
        default=None, description="Present on 422: one entry per invalid input, the first 50."
    )
    total_errors: int | None = Field(
        default=None, description="Present on 422: how many invalid inputs there were in all."
    )
