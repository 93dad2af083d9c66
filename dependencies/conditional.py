"""ETags and the `If-Match` / `If-None-Match` preconditions (RFC 9110, section 13)."""

import re
from typing import Annotated

from fastapi import Depends, Header, HTTPException

_VERSION_MAX = 2_147_483_647  # the `version` column is a 4-byte integer
# A precondition names a few versions; a list longer than this is refused (400) before any
# work, so that one header cannot keep the event loop busy (docs/api.md, "Limits").
MAX_ENTITY_TAGS = 100

# One element of a comma-separated entity-tag list, up to and including its comma: a tag
# (`"3"` or `W/"3"`: a comma inside the quotes belongs to the tag) or anything else, which
# is no tag of ours. Each element is matched once, from where the last one ended: linear.
_ELEMENT = re.compile(r'[ \t]*(?:(W/)?"([^"]*)"[ \t]*(?=,|$)|[^,]*)(?:,|$)')


def etag_for(version: int) -> str:
    return f'"{version}"'


def _versions(header: str, *, weak: bool) -> frozenset[int]:
    """The versions named by an entity-tag list; tags that are not ours match nothing.

    400 for a list of more than MAX_ENTITY_TAGS, found without reading the rest of it.
    """
    versions = set()
    elements = 0
    position = 0
    while position < len(header):
        element = _ELEMENT.match(header, position)
        assert element is not None  # every alternative matches, if only the empty string
        position = element.end()
        if not element.group().strip(" \t,"):
            continue  # an empty list element (`"1", , "2"`), which RFC 9110 §5.6.1 allows
        elements += 1
        if elements > MAX_ENTITY_TAGS:
            raise HTTPException(
                status_code=400,
                detail=f"A precondition may name at most {MAX_ENTITY_TAGS} entity tags",
            )
        is_weak, opaque = element.group(1), element.group(2)
        if opaque is None or (is_weak and not weak):
            continue  # not a tag, or a weak one where the strong comparison is used (If-Match)
        if opaque.isascii() and opaque.isdigit() and int(opaque) <= _VERSION_MAX:
            versions.add(int(opaque))
    return frozenset(versions)


async def if_match_versions(
    if_match: Annotated[
        str | None,
        Header(
            description='Write only if the product is at this ETag (e.g. `"3"`), else 412.',
        ),
    ] = None,
) -> frozenset[int] | None:
    """`None` (no header, or `*`): any existing version; otherwise the versions named."""
    if if_match is None or if_match.strip() == "*":
        return None
    return _versions(if_match, weak=False)


def none_match_versions(header: str | None) -> frozenset[int] | None:
    """The versions `If-None-Match` names (weak comparison); `None` for `*`, any version.

    Called before the product is read, so that an over-long list is a 400 with no database work.
    """
    if header is None:
        return frozenset()
    if header.strip() == "*":
        return None
    return _versions(header, weak=True)


def none_match_hits(versions: frozenset[int] | None, version: int) -> bool:
    """True when `If-None-Match` (as `none_match_versions` read it) names this version."""
    return versions is None or version in versions


IfMatch = Annotated[frozenset[int] | None, Depends(if_match_versions)]
# A plain header parameter, not a dependency: GET one is the hottest route, and parsing the
# header in the route (none_match_versions) costs less than a dependency.
IfNoneMatch = Annotated[
    str | None,
    Header(description="Answer 304 with no body if the product is still at this ETag."),
]
