"""Request bodies are JSON: anything else is a 415 before the body is parsed."""

from fastapi import HTTPException, Request

from dependencies.access import require_write_access


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _require_json_body(request: Request) -> None:
    """415 for a non-empty body whose Content-Type is not JSON (or is missing).

    A plain function, called by `require_json_write`: as a dependency of its own it would run
    on a worker thread (FastAPI runs plain `def` dependencies there) and cost a dependency.
    """
    headers = request.headers
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    if has_body and not _is_json(headers.get("content-type", "")):
        raise HTTPException(
            status_code=415,
            detail="The request body must be JSON: send Content-Type: application/json",
        )


async def require_json_write(request: Request) -> None:
    """The dependency of a write with a body: the API key first (401), then the JSON (415).

    One dependency that makes both checks rather than one each: FastAPI's cost per dependency
    is per request (README, Performance), and the order of the two answers stays fixed.
    """
    await require_write_access(request)
    _require_json_body(request)
