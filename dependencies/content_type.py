"""Request bodies are JSON: anything else is a 415 before the body is validated."""

from fastapi import HTTPException, Request


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def require_json_body(request: Request) -> None:
    """415 for a non-empty body whose Content-Type is not JSON (or is missing)."""
    headers = request.headers
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    if has_body and not _is_json(headers.get("content-type", "")):
        raise HTTPException(
            status_code=415,
            detail="The request body must be JSON: send Content-Type: application/json",
        )
