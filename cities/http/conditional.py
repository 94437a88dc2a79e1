"""Conditional requests (RFC 9110, section 13): ETags, If-Match and If-None-Match on an item.

An item's ETag is its `updated_at`, which every write moves strictly forward (store.TOUCH: at
least one microsecond past the previous value, even two writes in one clock tick), so a tag names
exactly one version of the row, and costs no query: it is read from the row the request read or
wrote anyway. A conditional write carries its precondition in the statement that writes
(`... WHERE id = %s AND updated_at = ANY(%s)`), so no other write can slip in between the check
and the write: of two clients writing with the same tag, the second waits for the first's row
lock, then finds the row changed and writes nothing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

_NOT_DIGITS = str.maketrans("", "", "-:.TZ")
# An entity-tag: optional W/ (weak), then an opaque tag in double quotes (RFC 9110, 8.8.3).
_ENTITY_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')
_VERSION = re.compile(r"[0-9]{20}", re.ASCII)


def etag(item: dict[str, Any]) -> str:
    """The strong ETag of an item as the API returns it: `"YYYYMMDDhhmmssffffff"` of its
    updated_at (UTC). Clients should treat it as opaque."""
    return f'"{item["updated_at"].translate(_NOT_DIGITS)}"'


def _tags(header: str) -> list[tuple[bool, str]]:
    """(weak?, opaque tag) of each entity-tag in a header's list; malformed parts match nothing."""
    return [(weak == "W/", opaque) for weak, opaque in _ENTITY_TAG.findall(header)]


def _version(opaque: str) -> datetime | None:
    """The updated_at an opaque tag of ours names, or None for a tag the API never issued."""
    if not _VERSION.fullmatch(opaque):
        return None
    d = opaque
    try:
        return datetime(int(d[:4]), int(d[4:6]), int(d[6:8]), int(d[8:10]), int(d[10:12]),
                        int(d[12:14]), int(d[14:]), tzinfo=UTC)
    except ValueError:
        return None


def if_match_holds(header: str, current: str) -> bool:
    """If-Match against the current ETag: `*`, or a listed tag equal to it (strong comparison:
    a weak tag never matches)."""
    if header.strip() == "*":
        return True
    return any(not weak and f'"{opaque}"' == current for weak, opaque in _tags(header))


def if_none_match_holds(header: str, current: str) -> bool:
    """If-None-Match against the current ETag: false for `*` or a listed tag equal to it (weak
    comparison: `W/` is ignored)."""
    if header.strip() == "*":
        return False
    return all(f'"{opaque}"' != current for _, opaque in _tags(header))


def write_condition(if_match: str | None, if_none_match: str | None) -> tuple[str, list] | None:
    """The SQL condition (and parameters) a write must also meet for these headers, or None.

    `If-Match: *` adds nothing: a write already applies only to an existing row. A listed tag the
    API never issued can match no version; an empty array then makes the condition false.
    """
    conditions: list[str] = []
    params: list[Any] = []
    if if_match is not None and if_match.strip() != "*":
        conditions.append("updated_at = ANY (%s)")
        params.append([v for weak, opaque in _tags(if_match)
                       if not weak and (v := _version(opaque)) is not None])
    if if_none_match is not None:
        if if_none_match.strip() == "*":
            conditions.append("false")  # the row exists, or the write finds nothing anyway
        else:
            conditions.append("NOT (updated_at = ANY (%s))")
            params.append([v for _, opaque in _tags(if_none_match)
                           if (v := _version(opaque)) is not None])
    if not conditions:
        return None
    return " AND ".join(conditions), params
