"""`@idempotent`: a POST that a client can send again after losing its answer, done once.

One line makes a route idempotent: `@idempotent` under its `@router.post(...)`. The route then
accepts an `Idempotency-Key` header (the IETF httpapi draft "The Idempotency-Key HTTP Header
Field"); its code, and what it does without the header, stay as they are:
- a new key: the route runs, and its answer is kept with its write, committed together
  (`crud.idempotency`), for at least IDEMPOTENCY_TTL_S;
- the same key and the same request (method, path, body): the kept answer, byte for byte,
  with `Idempotent-Replayed: true`; the route does not run;
- the same key and another request: 422. While the first is still in flight: 409.
Keys belong to the caller (`dependencies.access.require_write_access`): one caller never
receives an answer kept for another.
"""

import functools
import hashlib
import inspect
import itertools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request, Response, Security
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

import crud.idempotency as crud
from api.problems import PROBLEM_MEDIA_TYPE, catalog_problem
from config import get_settings
from crud import shared
from crud.errors import CatalogError, IdempotencyKeyInUse
from dependencies.access import require_write_access
from dependencies.database import SessionDep

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = "^[!-~]{1,255}$"  # 1 to 255 visible ASCII characters (RFC 5234 VCHAR)
# Refusals that the write itself produced (no such product, a conflict, a stale If-Match) are
# kept: a retry gets the same answer. What is refused before the route runs (400, 401, 413,
# 415, 422) never claims a key, and a 5xx rolls the claim back: both can be corrected and sent
# again under the same key.
KEPT_REFUSALS = frozenset({404, 409, 412})
# Now and then, a keyed write also deletes a bounded batch of expired keys: often enough to
# remove more keys than expire meanwhile, never a scan of the whole table (docs/design.md).
PURGE_EVERY = 100  # keyed writes of this process between two purges
PURGE_LIMIT = 500  # expired keys deleted by one purge, at most

_KEY = re.compile(KEY_PATTERN)
_PARAMETER = "idempotency_"  # the dependency's parameter, added to the route's signature
_keyed_writes = itertools.count(1)
logger = logging.getLogger("catalog.idempotency")


@dataclass(frozen=True)
class Idempotency:
    """A request that carries a valid `Idempotency-Key`, and the session its route writes with."""

    request: Request
    session: Session
    keyed: crud.KeyedRequest


async def idempotency_key(
    request: Request,
    db: SessionDep,
    caller: Annotated[str, Security(require_write_access)],
    key: Annotated[
        str | None,
        Header(
            alias=KEY_HEADER,
            description="A key of your choosing (e.g. a UUID) that makes this request safe to "
            "retry: the same key with the same request gets the first answer again "
            f"(`{REPLAYED_HEADER}: true`) and changes nothing. 1 to 255 visible ASCII characters.",
        ),
    ] = None,
) -> Idempotency | None:
    """The request's key (400 unless exactly one, well formed), caller and fingerprint."""
    if key is None:
        return None
    values = request.headers.getlist(KEY_HEADER)
    if len(values) != 1 or not _KEY.fullmatch(values[0]):
        raise HTTPException(
            status_code=400,
            detail=f"{KEY_HEADER} must be sent once, as 1 to 255 visible ASCII characters",
        )
    # FastAPI has read the body already: this is the same bytes, from memory.
    body = await request.body()
    fingerprint = hashlib.sha256(
        b"\n".join([request.method.encode(), request.url.path.encode(), body])
    ).hexdigest()
    return Idempotency(request, db, crud.KeyedRequest(caller, key, fingerprint))


def idempotent(endpoint: Callable[..., Response]) -> Callable[..., Response]:
    """Make a POST route (a plain `def` that writes with `SessionDep`) idempotent by key."""
    if inspect.iscoroutinefunction(endpoint):
        raise TypeError("@idempotent wraps plain `def` routes")
    signature = inspect.signature(endpoint)
    dependency = inspect.Parameter(
        _PARAMETER,
        inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[Idempotency | None, Depends(idempotency_key)],
    )

    @functools.wraps(endpoint)
    def route(**values: Any) -> Response:
        idempotency: Idempotency | None = values.pop(_PARAMETER)
        if idempotency is None:
            return endpoint(**values)
        return _answer_once(idempotency, lambda: endpoint(**values))

    # FastAPI reads the parameters from the signature (PEP 362): the route's own, plus the key.
    route.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), dependency]
    )
    return route


def _answer_once(idempotency: Idempotency, write: Callable[[], Response]) -> Response:
    db, keyed = idempotency.session, idempotency.keyed
    now = datetime.now(UTC)
    ttl = timedelta(seconds=get_settings().idempotency_ttl_s)
    for _ in range(2):  # a second time only after an expired key made way for this request
        try:
            return _first_answer(idempotency, write, now=now, ttl=ttl)
        except crud.KeyTaken:
            kept = crud.kept_answer(db, keyed, now=now)
            if kept is not None:
                return _replay(kept)
    raise IdempotencyKeyInUse()  # claimed anew, and expired, within one request: retry later


def _first_answer(
    idempotency: Idempotency, write: Callable[[], Response], *, now: datetime, ttl: timedelta
) -> Response:
    """The write's answer, kept with it; `crud.KeyTaken` if the key is taken already."""
    db, keyed = idempotency.session, idempotency.keyed
    try:
        with crud.claimed(db, keyed, now=now, ttl=ttl), shared.commit_deferred(db):
            response = write()
    except IdempotencyKeyInUse:
        raise
    except CatalogError as refusal:
        if refusal.status not in KEPT_REFUSALS:
            raise
        # The write was rolled back, and the claim with it: keep the refusal on its own.
        response = catalog_problem(idempotency.request, refusal)
        crud.keep_refusal(db, keyed, _kept(response), now=now, ttl=ttl)
        return response
    crud.keep(db, keyed, _kept(response))
    _purge_now_and_then(db, now)
    return response


def _kept(response: Response) -> crud.KeptAnswer:
    return crud.KeptAnswer(
        status=response.status_code,
        location=response.headers.get("location"),
        etag=response.headers.get("etag"),
        body=bytes(response.body),
    )


def _replay(kept: crud.KeptAnswer) -> Response:
    headers = {REPLAYED_HEADER: "true"}
    if kept.location is not None:
        headers["Location"] = kept.location
    if kept.etag is not None:
        headers["ETag"] = kept.etag
    # Every answer of this API is JSON: a resource below 400, a problem from 400 on.
    media_type = PROBLEM_MEDIA_TYPE if kept.status >= 400 else "application/json"
    return Response(kept.body, status_code=kept.status, headers=headers, media_type=media_type)


def _purge_now_and_then(db: Session, now: datetime) -> None:
    if next(_keyed_writes) % PURGE_EVERY:
        return
    try:
        crud.purge_expired(db, now=now, limit=PURGE_LIMIT)
    except SQLAlchemyError:
        # The answer is committed already; expired keys wait for the next purge.
        db.rollback()
        logger.warning("could not purge expired idempotency keys", exc_info=True)
