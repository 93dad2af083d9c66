"""Who may write: API keys from `API_KEYS`, as a Bearer token or an `X-API-Key` header."""

import hashlib
import hmac
from typing import Any

from fastapi import HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.security import APIKeyHeader, HTTPBearer

from config import get_settings

# FastAPI's own parsers of the two headers. They are called by `require_write_access`, not
# declared as dependencies of it: FastAPI spends ~75,000 CPU instructions per request on every
# dependency it solves (README, Performance), and these two would only hand over a header.
# The OpenAPI document declares them by hand instead (`WRITE_SECURITY`, `security_schemes`).
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="`X-API-Key: <API key>`"
)
_SCHEMES = (_bearer, _api_key_header)

# `openapi_extra` of every write: either scheme will do (what FastAPI writes for a dependency).
WRITE_SECURITY: dict[str, Any] = {"security": [{scheme.scheme_name: []} for scheme in _SCHEMES]}


def security_schemes() -> dict[str, Any]:
    """`components.securitySchemes` of the OpenAPI document, as FastAPI would write them."""
    return {
        scheme.scheme_name: jsonable_encoder(scheme.model, by_alias=True, exclude_none=True)
        for scheme in _SCHEMES
    }


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _is_known(presented: str, keys: list[str]) -> bool:
    # Compare fixed-length digests against every key, without stopping early, so the time
    # taken says nothing about how much of a key matched or which one.
    offered = _digest(presented)
    return any([hmac.compare_digest(offered, _digest(key)) for key in keys])  # noqa: C419


async def require_write_access(request: Request) -> None:
    """401 unless `API_KEYS` is empty, or the request carries a key and every key it carries is
    valid (a wrong `Authorization` is not excused by a right `X-API-Key`, or the other way)."""
    keys = get_settings().api_keys
    if not keys:
        return
    presented: list[str | None] = []
    if "authorization" in request.headers:
        bearer = await _bearer(request)
        presented.append(bearer.credentials if bearer is not None else None)  # None: not Bearer
    api_key = await _api_key_header(request)
    if api_key is not None:
        presented.append(api_key)
    valid = [key is not None and _is_known(key, keys) for key in presented]
    if not valid or not all(valid):
        raise HTTPException(
            status_code=401,
            detail="A valid API key is required for writes "
            "(Authorization: Bearer <key>, or X-API-Key: <key>)",
            headers={"WWW-Authenticate": 'Bearer realm="catalog"'},
        )
