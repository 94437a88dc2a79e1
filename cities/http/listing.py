"""The list query: its parameters, and the opaque keyset cursor that pages through it.

A cursor names the last row a page returned (its sort key and id), never an offset, so rows
inserted or deleted meanwhile cannot make a walk skip or repeat a row. It carries the sort and
filters it was made for and a checksum, so a cursor that was edited, truncated or reused with
another query is refused with 422 instead of silently returning the wrong page. The checksum key
is not a secret: cursors protect against mistakes, not against a client choosing where to start
reading a public list.

A cursor outlives the code that issued it (a client is mid-walk during a deploy), so what it is
bound to is written to survive a resource growing: the filters given, by name. Declaring a new
filter, anywhere in the list, leaves every cursor already issued valid for the query it was
issued for; only this module decides what a cursor holds (tests/api/test_listing.py replays
cursors of earlier versions).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from typing import Any, NamedTuple

from werkzeug.datastructures import MultiDict

from cities.http.errors import ValidationFailed
from cities.resources.resource import ID, Resource
from cities.resources.validation import (
    BIGINT_MAX,
    FORBIDDEN_CHARACTERS,
    ID_SCHEMA,
    MAX_TEXT_LENGTH,
    detail,
)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Version 2: [2, sort, {filter: value, ...} given ones only, key]. Version 1 (issued until
# version 2 replaced it): [1, sort, value of each declared filter or null, in declared order,
# key]; still accepted, its values read as the first declared filters (new ones go after them).
CURSOR_VERSION = 2
_POSITIONAL_VERSION = 1
_MAX_CURSOR_LENGTH = 1024
# What encode_cursor writes: base64url of the JSON payload, a dot, base64url of its 12-byte
# checksum (16 characters). Published as the parameter's pattern, so a schema-driven client or
# fuzzer generates plausible cursors; an empty cursor is refused like any other empty parameter.
_SIGNATURE_CHARS = 16
CURSOR_PATTERN = (
    f"[A-Za-z0-9_-]{{1,{_MAX_CURSOR_LENGTH - 1 - _SIGNATURE_CHARS}}}"
    f"\\.[A-Za-z0-9_-]{{{_SIGNATURE_CHARS}}}"
)
_CURSOR = re.compile(CURSOR_PATTERN)
_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)
_NO_FILTERS: dict[str, Any] = {}


class ListQuery(NamedTuple):
    """A checked list request. (A NamedTuple: a dataclass costs more at Lambda init.)"""

    limit: int = DEFAULT_LIMIT
    sort: str = "id"
    # The resource's filters that were given, by name (never mutated).
    filters: dict[str, Any] = _NO_FILTERS
    # The sort key of the previous page's last row: (id,), or (value, id) for a field's sort
    # (value None: a NULL of a nullable field's sort).
    after: tuple[Any, ...] | None = None


def parse_positive_id(text: str) -> int | None:
    """A database id from a URL segment, or None: ids are 1..2**63-1 in plain ASCII digits."""
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if 1 <= value <= BIGINT_MAX else None


def canonical_id(text: str) -> int | None:
    """The id an item URL's segment names, only if written the one way (`2`, never `02`)."""
    item_id = parse_positive_id(text)
    return item_id if item_id is not None and str(item_id) == text else None


def _sign(resource: Resource, payload: bytes) -> bytes:
    """A checksum keyed by the collection: a cursor is valid for the list that issued it only.
    (The key of /cities is the one its cursors were always signed with, whatever the version.)"""
    key = f"{resource.plural}.cursor.v1".encode("ascii")
    return hmac.new(key, payload, hashlib.sha256).digest()[:12]


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scope(query: ListQuery) -> list[Any]:
    """What a cursor is bound to: its sort and the filters given, by name."""
    return [query.sort, dict(query.filters)]


def _decoded_scope(resource: Resource, decoded: list[Any]) -> list[Any] | None:
    """The scope a payload (without its key) was issued for, as _scope writes it today; None
    when it is not one this code or an earlier version ever issued."""
    version = decoded[0] if type(decoded[0]) is int else None
    if version == CURSOR_VERSION and len(decoded) == 3 and isinstance(decoded[2], dict):
        return decoded[1:]
    names = [f.name for f in resource.filters]
    values = decoded[2:]
    if version != _POSITIONAL_VERSION or len(values) > len(names):
        return None
    given = {name: value for name, value in zip(names, values, strict=False) if value is not None}
    return [decoded[1], given]


def encode_cursor(resource: Resource, query: ListQuery, key: list[Any]) -> str:
    payload = json.dumps(
        [CURSOR_VERSION, *_scope(query), key],
        separators=(",", ":"), ensure_ascii=True, sort_keys=True,
    ).encode("ascii")
    return f"{_b64encode(payload)}.{_b64encode(_sign(resource, payload))}"


def cursor_after(resource: Resource, query: ListQuery, row: dict[str, Any]) -> str:
    """The cursor of the page that follows `row`."""
    fields = resource.sort_keys[query.sort].key
    return encode_cursor(resource, query, [row[name] for name in fields])


def _valid_value(schema: Any, value: Any) -> bool:
    """A key value of the type its field's schema says: so that a cursor can never carry a value
    the database would refuse to compare (NUL in a string, an integer beyond bigint)."""
    if schema.get("type") == "string":
        return (
            isinstance(value, str)
            and 0 < len(value) <= schema.get("maxLength", MAX_TEXT_LENGTH)
            and not FORBIDDEN_CHARACTERS.search(value)
        )
    return (
        type(value) is int
        and schema.get("minimum", 1) <= value <= min(schema.get("maximum", BIGINT_MAX), BIGINT_MAX)
    )


def _valid_key(resource: Resource, sort: str, key: Any) -> bool:
    fields = resource.sort_keys[sort].key
    if not (isinstance(key, list) and len(key) == len(fields)):
        return False
    return all(
        _valid_value(ID_SCHEMA, value) if name == ID
        else (value is None and resource.field[name].nullable)
        or _valid_value(resource.field[name].schema, value)
        for name, value in zip(fields, key, strict=True)
    )


def decode_cursor(resource: Resource, cursor: str, query: ListQuery) -> tuple[Any, ...]:
    """The row key a cursor points after; 422 for anything not issued for this very query."""
    invalid = ValidationFailed(
        details=[detail("cursor", "is not a valid cursor for this query", "query")]
    )
    if not _CURSOR.fullmatch(cursor):
        raise invalid
    body, signature = cursor.split(".")
    try:
        payload = _b64decode(body)
        valid_signature = hmac.compare_digest(_b64decode(signature), _sign(resource, payload))
        decoded = json.loads(payload.decode("ascii")) if valid_signature else None
    except (ValueError, binascii.Error, RecursionError):
        raise invalid from None
    if not (isinstance(decoded, list) and len(decoded) >= 3):
        raise invalid
    if _decoded_scope(resource, decoded[:-1]) != _scope(query):
        raise invalid
    if not _valid_key(resource, query.sort, decoded[-1]):
        raise invalid
    return tuple(decoded[-1])


def parse_list_query(resource: Resource, args: MultiDict[str, str]) -> ListQuery:
    """Checked list parameters; every problem is reported, each naming its parameter."""
    known = ("limit", *(f.name for f in resource.filters), "sort", "cursor")
    problems = []
    for name in args:
        if name not in known:
            problems.append(detail(name, "is not a known parameter", "query"))
        elif len(args.getlist(name)) > 1:
            problems.append(detail(name, "must be given at most once", "query"))
    values: dict[str, Any] = {}

    limit = args.get("limit")
    if limit is not None:
        # Digits first: int() refuses strings of more than 4300 digits with an exception.
        if _DIGITS.fullmatch(limit) and 1 <= int(limit) <= MAX_LIMIT:
            values["limit"] = int(limit)
        else:
            problems.append(
                detail("limit", f"must be a whole number from 1 to {MAX_LIMIT}", "query")
            )

    filters: dict[str, Any] = {}
    for spec in resource.filters:
        raw = args.get(spec.name)
        if raw is not None:
            value, reason = spec.rule(raw)
            if reason:
                problems.append(detail(spec.name, reason, "query"))
            else:
                filters[spec.name] = value
    if filters:
        values["filters"] = filters

    sort = args.get("sort")
    if sort is not None:
        if sort in resource.sort_keys:
            values["sort"] = sort
        else:
            problems.append(
                detail("sort", f"must be one of {', '.join(resource.sort_names)}", "query")
            )

    if problems:
        raise ValidationFailed(details=problems)
    query = ListQuery(**values)
    cursor = args.get("cursor")
    if cursor is not None:
        query = query._replace(after=decode_cursor(resource, cursor, query))
    return query
