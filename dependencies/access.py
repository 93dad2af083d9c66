"""Who may write: API keys from `API_KEYS`, as a Bearer token or an `X-API-Key` header."""

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from config import Settings, get_settings

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="`X-API-Key: <API key>`"
)


async def current_settings() -> Settings:
    """The settings, as a dependency the tests can override (async: no worker thread)."""
    return get_settings()


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _is_known(presented: str, keys: list[str]) -> bool:
    # Compare fixed-length digests against every key, without stopping early, so the time
    # taken says nothing about how much of a key matched or which one.
    offered = _digest(presented)
    return any([hmac.compare_digest(offered, _digest(key)) for key in keys])  # noqa: C419


async def require_write_access(
    request: Request,
    settings: Annotated[Settings, Depends(current_settings)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> None:
    """401 unless `API_KEYS` is empty, or the request carries a key and every key it carries is
    valid (a wrong `Authorization` is not excused by a right `X-API-Key`, or the other way)."""
    if not settings.api_keys:
        return
    presented: list[str | None] = []
    if "authorization" in request.headers:
        presented.append(bearer.credentials if bearer is not None else None)  # None: not Bearer
    if api_key is not None:
        presented.append(api_key)
    valid = [key is not None and _is_known(key, settings.api_keys) for key in presented]
    if not valid or not all(valid):
        raise HTTPException(
            status_code=401,
            detail="A valid API key is required for writes "
            "(Authorization: Bearer <key>, or X-API-Key: <key>)",
            headers={"WWW-Authenticate": 'Bearer realm="catalog"'},
        )
