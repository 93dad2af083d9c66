"""The `If-Match` / `If-None-Match` preconditions (RFC 9110, section 13): the versions they name."""

import re
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

_VERSION_MAX = 2_147_483_647  # the `version` column is a 4-byte integer
# A tag of ours: a version's digits as its ETag writes them, so no leading zero (entity tags
# compare character by character: `"01"` is not `"1"`), and at most as many as the largest
# version has (a longer one never reaches int(), which refuses more than 4,300 digits).
_VERSION_TAG = re.compile(r"[1-9][0-9]{0,9}")
# A longer list is refused (400) before any work, so that one header cannot keep the event loop
# busy (docs/api.md, "Limits").
MAX_ENTITY_TAGS = 100
# `*`, or entity tags separated by commas (empty elements allowed, as RFC 9110's lists allow).
# Documented only: a value that does not match is the handlers' 400 (never FastAPI's 422).
ENTITY_TAGS_PATTERN = (
    r'^([ \t]*\*[ \t]*|[ \t,]*((W/)?"[^"]*"[ \t]*(,[ \t,]*(W/)?"[^"]*"[ \t]*)*)?[ \t,]*)$'
)
# One element of the list, up to and including its comma: a tag (`"3"` or `W/"3"`: a comma
# inside the quotes belongs to the tag) or anything else. It matches wherever the last element
# ended, if only the empty string, so each element is matched once: linear.
_ELEMENT = re.compile(r'[ \t]*(?:(W/)?"([^"]*)"[ \t]*(?=,|$)|[^,]*)(?:,|$)')


def _versions(header: str, *, weak: bool, name: str) -> frozenset[int]:
    """The versions named by an entity-tag list; tags that are not ours match nothing.

    400 for an element that is not an entity tag (`3`, a missing quote: never judged stale nor
    ignored), and for a list of more than MAX_ENTITY_TAGS, found without reading the rest.
    """
    versions = set()
    elements = 0
    for element in _ELEMENT.finditer(header):
        if not element.group().strip(" \t,"):
            continue  # an empty list element (`"1", , "2"`), which RFC 9110 §5.6.1 allows
        elements += 1
        if elements > MAX_ENTITY_TAGS:
            raise HTTPException(
                status_code=400,
                detail=f"A precondition may name at most {MAX_ENTITY_TAGS} entity tags",
            )
        is_weak, opaque = element.group(1), element.group(2)
        if opaque is None:
            raise HTTPException(
                status_code=400,
                detail=f"{name} must be * or a list of entity tags, each in double quotes:"
                ' "3" or W/"3" (the ETag of an answer, as sent)',
            )
        if is_weak and not weak:
            continue  # a weak tag, where the strong comparison is used (If-Match)
        if _VERSION_TAG.fullmatch(opaque) and int(opaque) <= _VERSION_MAX:
            versions.add(int(opaque))
    return frozenset(versions)


def _all_lines(request: Request, name: str) -> str:
    # A list header sent on several lines is one list (RFC 9110 §5.3); FastAPI's `Header`
    # hands over the first line only.
    return ", ".join(request.headers.getlist(name))


async def if_match_versions(
    request: Request,
    if_match: Annotated[
        str | None,
        Header(
            description='Write only if the product is at this ETag (e.g. `"3"`), else 412.',
            json_schema_extra={"pattern": ENTITY_TAGS_PATTERN},
        ),
    ] = None,
) -> frozenset[int] | None:
    """`None` (no header, or `*`): any existing version; otherwise the versions named."""
    if if_match is None:
        return None
    header = _all_lines(request, "if-match")
    return None if header.strip() == "*" else _versions(header, weak=False, name="If-Match")


async def if_none_match_versions(
    request: Request,
    if_none_match: Annotated[
        str | None,
        Header(
            description="Answer 304 with no body if the resource is still at this ETag.",
            json_schema_extra={"pattern": ENTITY_TAGS_PATTERN},
        ),
    ] = None,
) -> frozenset[int] | None:
    """Empty without the header, `None` for `*` (any version), else the versions named (weak
    comparison), parsed before the resource is read: a bad list costs no database work."""
    if if_none_match is None:
        return frozenset()
    header = _all_lines(request, "if-none-match")
    return None if header.strip() == "*" else _versions(header, weak=True, name="If-None-Match")


IfMatch = Annotated[frozenset[int] | None, Depends(if_match_versions)]
IfNoneMatch = Annotated[frozenset[int] | None, Depends(if_none_match_versions)]
