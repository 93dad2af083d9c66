"""The dependencies every write route declares, in the order their answers take precedence:
the body's size (413), the API key (401), then the body's media type (415)."""

from fastapi import Depends, HTTPException, Request, Security

from dependencies.access import require_write_access


async def require_json_body(request: Request) -> None:
    """415 for a non-empty body whose Content-Type is not JSON (or is missing): JSON is
    `application/json` or a `+json` type such as PATCH's merge patch, but JSON Patch
    (`application/json-patch+json`) is another format, which this API does not take."""
    headers = request.headers
    if headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers:
        return
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "application/json" or (
        media_type.startswith("application/")
        and media_type.endswith("+json")
        and media_type != "application/json-patch+json"
    ):
        return
    raise HTTPException(
        status_code=415,
        detail="The request body must be JSON: send Content-Type: application/json"
        " (or application/merge-patch+json, a JSON merge patch, with PATCH)",
    )


async def read_unused_body(request: Request) -> None:
    """A write that takes no body (`DELETE`) still reads what was sent, as FastAPI does for
    every other write before its dependencies run: a chunked body over the limit is then a
    413 before anything changes (api/limits.py counts it as it is read)."""
    await request.body()


WRITE = [Security(require_write_access)]
JSON_WRITE = [*WRITE, Depends(require_json_body)]
BODILESS_WRITE = [Depends(read_unused_body), *WRITE]
