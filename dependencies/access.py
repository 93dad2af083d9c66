"""Who may write: API keys from `API_KEYS`, as a Bearer token or an `X-API-Key` header."""

import hashlib
import hmac
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from config import get_settings

# FastAPI's own schemes: they parse the headers and declare themselves in the OpenAPI
# document (`api.openapi` drops them again when `API_KEYS` is unset: writes are then open).
bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="`X-API-Key: <API key>`"
)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _is_known(presented: str, keys: list[str]) -> bool:
    # Fixed-length digests against every key, never stopping early: the time says nothing.
    offered = _digest(presented)
    return any([hmac.compare_digest(offered, _digest(key)) for key in keys])  # noqa: C419


# Who wrote, when writes are open (`API_KEYS` unset): everyone is the same caller.
ANYONE = "anyone"


async def require_write_access(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    api_key: Annotated[str | None, Security(api_key_header)],
) -> str:
    """401 unless `API_KEYS` is empty or every key the request carries is valid (a wrong
    `Authorization` is not excused by a right `X-API-Key`). The caller: the SHA-256 (hex) of its
    first key, never the key, or `ANYONE` when writes are open."""
    keys = get_settings().api_keys
    if not keys:
        return ANYONE
    presented: list[str | None] = []
    if "authorization" in request.headers:
        # None: an Authorization header that is not `Bearer <token>`.
        presented.append(credentials.credentials if credentials is not None else None)
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
    first = presented[0]
    assert first is not None  # every key presented is valid
    return _digest(first).hex()
