"""ETags and the `If-Match` / `If-None-Match` preconditions (RFC 9110, section 13)."""

from typing import Annotated

from fastapi import Depends, Header

_VERSION_MAX = 2_147_483_647  # the `version` column is a 4-byte integer


def etag_for(version: int) -> str:
    return f'"{version}"'


def _versions(header: str, *, weak: bool) -> frozenset[int]:
    """The versions named by an entity-tag list; tags that are not ours match nothing."""
    versions = set()
    for raw_tag in header.split(","):
        tag = raw_tag.strip()
        if tag.startswith("W/"):
            if not weak:
                continue  # If-Match uses the strong comparison: weak tags never match.
            tag = tag[2:]
        if len(tag) >= 3 and tag[0] == tag[-1] == '"' and tag[1:-1].isascii():
            digits = tag[1:-1]
            if digits.isdigit() and int(digits) <= _VERSION_MAX:
                versions.add(int(digits))
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


def none_match_hits(header: str | None, version: int) -> bool:
    """True when `If-None-Match` names this version (weak comparison) or is `*`."""
    if header is None:
        return False
    return header.strip() == "*" or version in _versions(header, weak=True)


IfMatch = Annotated[frozenset[int] | None, Depends(if_match_versions)]
# A plain header parameter, not a dependency: the header is only compared (none_match_hits)
# once the product's version is known, and GET one is the hottest route.
IfNoneMatch = Annotated[
    str | None,
    Header(description="Answer 304 with no body if the product is still at this ETag."),
]
