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
CITY_FIELDS = ("name", "state")
# C0 and C1 control characters (NUL included) and lone surrogates, which no text column can
# store and which json.loads lets through from "\\ud800" escapes.
FORBIDDEN_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
ACCEPTED_CHARSETS = {"utf-8", "utf8"}


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


def city_fields(body: Any, *, partial: bool) -> dict[str, str]:
    """Checked `name`/`state` from a body: both required unless `partial` (PATCH)."""
    if not isinstance(body, dict):
        raise ValidationFailed(
            "The request body must be a JSON object.",
            [detail("body", "must be a JSON object with fields name and state")],
        )
    problems = [detail(key, "appears more than once") for key in getattr(body, "duplicates", ())]
    problems += [detail(key, "is not a known field") for key in body if key not in CITY_FIELDS]
    fields: dict[str, str] = {}
    for name in CITY_FIELDS:
        if name not in body:
            if not partial:
                problems.append(detail(name, "is required"))
            continue
        value, reason = clean_text(body[name])
        if reason:
            problems.append(detail(name, reason))
        else:
            fields[name] = value
    if partial and not problems and not fields:
        problems.append(detail("body", "must contain name, state or both"))
    if problems:
        raise ValidationFailed(details=problems)
    return fields
