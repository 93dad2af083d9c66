"""The `Consistency-Token` header: what a write's answer carries, and a read may send back.

A token is the primary's WAL position after the write committed, in PostgreSQL's text form
(`16/B374D848`, `database.replica`): a read that sends it is served by the replica only once
the replica has replayed that far, so it sees the write, or a later state, on any instance.
Tokens exist only while a replica is configured (DATABASE_READ_URL): without one every read
is served by the primary, which has every write already. Writes get theirs from
`api.middleware.ConsistencyTokenMiddleware`.
"""

from fastapi import HTTPException, Request

from database.replica import format_lsn, parse_lsn

HEADER = "Consistency-Token"


def format_token(lsn: int) -> str:
    return format_lsn(lsn)


def requested_token(request: Request) -> int | None:
    """The WAL position a read must see (None: no token); 400 unless sent once, well formed."""
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    lsn = parse_lsn(values[0].strip()) if len(values) == 1 else None
    if lsn is None:
        raise HTTPException(
            status_code=400,
            detail=f"{HEADER} must be sent once, as the {HEADER} of a write's answer"
            " (e.g. 0/1A2B3C4D)",
        )
    return lsn
