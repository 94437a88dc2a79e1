"""The list query: its parameters, and the opaque keyset cursor that pages through it.

A cursor names the last row a page returned (its sort key and id), never an offset, so rows
inserted or deleted meanwhile cannot make a walk skip or repeat a row. It carries the sort and
filters it was made for and a checksum, so a cursor that was edited, truncated or reused with
another query is refused with 422 instead of silently returning the wrong page. The checksum key
is not a secret: cursors protect against mistakes, not against a client choosing where to start
reading a public list.
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

from .errors import ValidationFailed
from .validation import FORBIDDEN_CHARACTERS, MAX_TEXT_LENGTH, clean_search, clean_text, detail

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
SORTS = ("id", "-id", "name", "-name")
PARAMETERS = ("limit", "state", "q", "sort", "cursor")
BIGINT_MAX = 2**63 - 1
CURSOR_VERSION = 1
_CURSOR_KEY = b"cities.cursor.v1"
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


class ListQuery(NamedTuple):
    """A checked list request. (A NamedTuple: a dataclass costs more at Lambda init.)"""

    limit: int = DEFAULT_LIMIT
    state: str | None = None
    q: str | None = None
    sort: str = "id"
    # The last row of the previous page: (name, id) for name sorts, (id,) for id sorts.
    after: tuple[Any, ...] | None = None

    @property
    def by_name(self) -> bool:
        return self.sort.lstrip("-") == "name"

    def cursor_after(self, row: dict[str, Any]) -> str:
        key = [row["name"], row["id"]] if self.by_name else [row["id"]]
        return encode_cursor(self, key)


def parse_positive_id(text: str) -> int | None:
    """A database id from a URL segment, or None: ids are 1..2**63-1 in plain ASCII digits."""
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if 1 <= value <= BIGINT_MAX else None


def _sign(payload: bytes) -> bytes:
    return hmac.new(_CURSOR_KEY, payload, hashlib.sha256).digest()[:12]


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cursor(query: ListQuery, key: list[Any]) -> str:
    payload = json.dumps(
        [CURSOR_VERSION, query.sort, query.state, query.q, key],
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode("ascii")
    return f"{_b64encode(payload)}.{_b64encode(_sign(payload))}"


def _valid_key(sort: str, key: Any) -> bool:
    def is_id(value: Any) -> bool:
        return type(value) is int and 1 <= value <= BIGINT_MAX

    if sort.lstrip("-") == "id":
        return isinstance(key, list) and len(key) == 1 and is_id(key[0])
    return (
        isinstance(key, list)
        and len(key) == 2
        and isinstance(key[0], str)
        and 0 < len(key[0]) <= MAX_TEXT_LENGTH
        and not FORBIDDEN_CHARACTERS.search(key[0])
        and is_id(key[1])
    )


def decode_cursor(cursor: str, query: ListQuery) -> tuple[Any, ...]:
    """The row key a cursor points after; 422 for anything not issued for this very query."""
    invalid = ValidationFailed(
        details=[detail("cursor", "is not a valid cursor for this query", "query")]
    )
    if not _CURSOR.fullmatch(cursor):
        raise invalid
    body, signature = cursor.split(".")
    try:
        payload = _b64decode(body)
        valid_signature = hmac.compare_digest(_b64decode(signature), _sign(payload))
        decoded = json.loads(payload.decode("ascii")) if valid_signature else None
    except (ValueError, binascii.Error, RecursionError):
        raise invalid from None
    if not (isinstance(decoded, list) and len(decoded) == 5):
        raise invalid
    version, sort, state, q, key = decoded
    if (version, sort, state, q) != (CURSOR_VERSION, query.sort, query.state, query.q):
        raise invalid
    if not _valid_key(sort, key):
        raise invalid
    return tuple(key)


def parse_list_query(args: MultiDict[str, str]) -> ListQuery:
    """Checked list parameters; every problem is reported, each naming its parameter."""
    problems = []
    for name in args:
        if name not in PARAMETERS:
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

    state = args.get("state")
    if state is not None:
        cleaned, reason = clean_text(state)
        if reason:
            problems.append(detail("state", reason, "query"))
        else:
            values["state"] = cleaned

    q = args.get("q")
    if q is not None:
        term, reason = clean_search(q)
        if reason:
            problems.append(detail("q", reason, "query"))
        else:
            values["q"] = term

    sort = args.get("sort")
    if sort is not None:
        if sort in SORTS:
            values["sort"] = sort
        else:
            problems.append(detail("sort", f"must be one of {', '.join(SORTS)}", "query"))

    if problems:
        raise ValidationFailed(details=problems)
    query = ListQuery(**values)
    cursor = args.get("cursor")
    if cursor is not None:
        query = ListQuery(**values, after=decode_cursor(cursor, query))
    return query
