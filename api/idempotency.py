"""`Idempotency-Key`: a POST that a client can send again after losing its answer, done once.

A route opts in by declaring the dependency and returning its answer through it:

    def create_product(..., db: SessionDep, idempotency: IdempotencyDep) -> Response:
        product = crud.create_product(db, values=payload.model_dump())
        return idempotency.keep(responses.one(..., status_code=201, location=...))

Without the header nothing changes. With it (the IETF httpapi draft "The Idempotency-Key HTTP
Header Field"):
- a new key is claimed in the request's transaction before the route runs, and its answer is
  kept with the write (`keep`), committed together, for at least IDEMPOTENCY_TTL_S;
- the same key and the same request (method, path, body): the kept answer, byte for byte,
  with `Idempotent-Replayed: true`; the route does not run;
- the same key and another request: 422. While the first is still in flight: 409.
Keys belong to the caller (`dependencies.access.require_write_access`): one caller never
receives an answer kept for another.
"""

import hashlib
import itertools
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response, Security
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

import crud.idempotency as crud
from api.problems import PROBLEM_MEDIA_TYPE, catalog_problem
from config import get_settings
from crud.errors import CatalogError
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
_keyed_writes = itertools.count(1)
logger = logging.getLogger("catalog.idempotency")


class Replay(Exception):  # not an error: the kept answer, given again
    """The key's answer is kept already: it is the answer, and the route does not run."""

    def __init__(self, answer: crud.KeptAnswer) -> None:
        self.answer = answer


@dataclass
class Idempotency:
    """What a keyed route is given: `keep(response)` keeps its answer with its write."""

    session: Session
    keyed: crud.KeyedRequest | None = None
    kept: bool = False

    def keep(self, response: Response) -> Response:
        """Keep `response` with the key (if the request has one); return it."""
        if self.keyed is not None:
            crud.keep(self.session, self.keyed, _kept(response))
            self.kept = True
        return response


async def idempotency(
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
) -> AsyncIterator[Idempotency]:
    """Claim the key before the route runs, or answer with the kept answer (`Replay`).

    The session's work runs on a worker thread, as the route's does.
    """
    if key is None:
        yield Idempotency(db)
        return
    values = request.headers.getlist(KEY_HEADER)
    if len(values) != 1 or not _KEY.fullmatch(values[0]):
        raise HTTPException(
            400, f"{KEY_HEADER} must be sent once, as 1 to 255 visible ASCII characters"
        )
    # FastAPI has read the body already: this is the same bytes, from memory.
    asked = b"\n".join([request.method.encode(), request.url.path.encode(), await request.body()])
    keyed = crud.KeyedRequest(caller, key, hashlib.sha256(asked).hexdigest())
    now = datetime.now(UTC)
    ttl = timedelta(seconds=get_settings().idempotency_ttl_s)
    kept = await run_in_threadpool(crud.claim_or_kept, db, keyed, now=now, ttl=ttl)
    if kept is not None:
        raise Replay(kept)
    claimed = Idempotency(db, keyed)
    try:
        yield claimed
    except CatalogError as refusal:
        if refusal.status in KEPT_REFUSALS:
            refused = catalog_problem(request, refusal)
            await run_in_threadpool(_keep_refusal, db, keyed, refused, now=now, ttl=ttl)
        raise
    if not claimed.kept:
        raise RuntimeError("a keyed route must return idempotency.keep(<its response>)")
    if next(_keyed_writes) % PURGE_EVERY == 0:
        await run_in_threadpool(_purge, db, now)


def _keep_refusal(
    db: Session, keyed: crud.KeyedRequest, refusal: Response, *, now: datetime, ttl: timedelta
) -> None:
    """Keep the answer of a write that was refused, in a transaction of its own: the write's
    was rolled back (a refused constraint leaves nothing else to do with it), its claim too."""
    db.rollback()
    if crud.claim(db, keyed, now=now, ttl=ttl):  # else another request's answer is kept
        crud.keep(db, keyed, _kept(refusal))
        db.commit()


def _purge(db: Session, now: datetime) -> None:
    try:
        with db.begin_nested():  # a failed purge must not fail the write
            crud.purge_expired(db, now=now, limit=PURGE_LIMIT)
    except SQLAlchemyError:
        logger.warning("could not purge expired idempotency keys", exc_info=True)


def _kept(response: Response) -> crud.KeptAnswer:
    return crud.KeptAnswer(
        status=response.status_code,
        location=response.headers.get("location"),
        etag=response.headers.get("etag"),
        body=bytes(response.body),
    )


async def _replay(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Replay)
    kept = exc.answer
    given = {REPLAYED_HEADER: "true", "Location": kept.location, "ETag": kept.etag}
    headers = {name: value for name, value in given.items() if value is not None}
    # Every answer of this API is JSON: a resource below 400, a problem from 400 on.
    media_type = PROBLEM_MEDIA_TYPE if kept.status >= 400 else "application/json"
    return Response(kept.body, status_code=kept.status, headers=headers, media_type=media_type)


def install_idempotency(app: FastAPI) -> None:
    """Kept answers are given again (`Replay`)."""
    app.add_exception_handler(Replay, _replay)


IdempotencyDep = Annotated[Idempotency, Depends(idempotency, scope="function")]
