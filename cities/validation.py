"""Turning untrusted request bodies and query strings into checked values, or precise errors.

Each failing field gets its own entry in the error's `details`, so a client can fix every
problem from a single response.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from flask import Request

from .errors import BadRequest, UnsupportedMediaType, ValidationFailed

MAX_TEXT_LENGTH = 100
# C0 and C1 control characters (NUL included) and lone surrogates, which no text column can
# store and which json.loads lets through from "\\ud800" escapes.
FORBIDDEN_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
ACCEPTED_CHARSETS = {"utf-8", "utf8"}
BIGINT_MAX = 2**63 - 1

# The OpenAPI schemas of the rules below, beside them so that a rule and its published shape
# change together. clean_text accepts up to 100 characters, no C0/C1 control characters, and
# something besides whitespace (it trims); what the API returns is already trimmed.
_NO_CONTROLS = "[^\\u0000-\\u001f\\u007f-\\u009f]"
TEXT_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TEXT_LENGTH,
    "pattern": f"^{_NO_CONTROLS}*[^\\s\\u0000-\\u001f\\u007f-\\u009f]{_NO_CONTROLS}*$",
}
SEARCH_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TEXT_LENGTH,
    "pattern": f"^{_NO_CONTROLS}+$",
}
COUNT_SCHEMA = {"type": "integer", "minimum": 0, "maximum": BIGINT_MAX}


def detail(field: str, message: str, location: str = "body") -> dict[str, str]:
    return {"field": field[:MAX_TEXT_LENGTH], "in": location, "message": message}


class _JsonObject(dict):
    """A decoded JSON object that remembers which keys appeared more than once."""

    duplicates: tuple[str, ...] = ()


def _object_pairs(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject(pairs)
    if len(obj) != len(pairs):
        counts = Counter(key for key, _ in pairs)
        obj.duplicates = tuple(sorted(key for key, n in counts.items() if n > 1))
    return obj


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def read_json_body(request: Request) -> Any:
    """The decoded body: 415 unless JSON, 413 past the size limit, 400 unless well-formed."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType("Compressed request bodies are not supported; send plain JSON.")
    charset = request.mimetype_params.get("charset")
    if charset is not None and charset.lower() not in ACCEPTED_CHARSETS:
        raise UnsupportedMediaType("JSON bodies must be encoded as UTF-8.")
    raw = request.get_data(cache=False)  # raises 413 beyond MAX_CONTENT_LENGTH
    if not raw.strip():
        raise BadRequest("The request body is empty; a JSON object is expected.")
    try:
        return json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_object_pairs,
            parse_constant=_refuse_constant,
        )
    except UnicodeDecodeError:
        raise BadRequest("The request body is not valid UTF-8.") from None
    except (ValueError, RecursionError):
        raise BadRequest("The request body is not valid JSON.") from None


def clean_text(value: Any) -> tuple[str | None, str | None]:
    """(trimmed value, None) when acceptable, else (None, reason)."""
    if not isinstance(value, str):
        return None, "must be a string"
    value = value.strip()
    if not value:
        return None, "must not be empty"
    if len(value) > MAX_TEXT_LENGTH:
        return None, f"must be at most {MAX_TEXT_LENGTH} characters"
    if FORBIDDEN_CHARACTERS.search(value):
        return None, "must not contain control characters"
    return value, None


def search_term(value: str) -> tuple[str | None, str | None]:
    """A search term as given (spaces kept: they are part of the substring), or a reason."""
    if value == "":
        return None, "must not be empty"
    if len(value) > MAX_TEXT_LENGTH:
        return None, f"must be at most {MAX_TEXT_LENGTH} characters"
    if FORBIDDEN_CHARACTERS.search(value):
        return None, "must not contain control characters"
    return value, None


def count(value: Any) -> tuple[int | None, str | None]:
    """A whole number from 0 to 2**63-1 (a bigint column), such as a population. As in JSON
    Schema, 5.0 is the integer 5; true is no number (bool is an int subclass in Python)."""
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        return None, "must be a whole number"
    if not 0 <= value <= BIGINT_MAX:
        return None, f"must be from 0 to {BIGINT_MAX}"
    return value, None


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def body_fields(resource: Any, body: Any, *, partial: bool) -> dict[str, Any]:
    """The checked fields of a body for `resource` (a cities.resource.Resource).

    Required fields must all be there unless `partial` (PATCH), which needs at least one field;
    a nullable field may be null (kept as None, so PATCH can tell "set to null" from "absent").
    Every problem is reported at once.
    """
    names = [field.name for field in resource.fields]
    if not isinstance(body, dict):
        raise ValidationFailed(
            "The request body must be a JSON object.",
            [detail("body", f"must be a JSON object with fields {_listed(names)}")],
        )
    problems = [detail(key, "appears more than once") for key in getattr(body, "duplicates", ())]
    problems += [detail(key, "is not a known field") for key in body if key not in resource.field]
    fields: dict[str, Any] = {}
    for field in resource.fields:
        if field.name not in body:
            if field.required and not partial:
                problems.append(detail(field.name, "is required"))
            continue
        raw = body[field.name]
        if raw is None and field.nullable:
            fields[field.name] = None
            continue
        value, reason = field.rule(raw)
        if reason:
            problems.append(detail(field.name, reason))
        else:
            fields[field.name] = value
    if partial and not problems and not fields:
        wanted = f"{names[0]}, {names[1]} or both" if len(names) == 2 else (
            f"at least one of {', '.join(names)}"
        )
        problems.append(detail("body", f"must contain {wanted}"))
    if problems:
        raise ValidationFailed(details=problems)
    return fields
