"""Turning untrusted request bodies and query strings into checked values, or precise errors.

Each failing field gets its own entry in the error's `details`, so a client can fix every
problem from a single response.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from typing import Any

from flask import Request

from cities.http.errors import BadRequest, UnsupportedMediaType, ValidationFailed

MAX_TEXT_LENGTH = 100


class LazyPattern:
    """A regular expression compiled on its first use. Compiling this module's five rules was
    most of the project's own import cost (docs/benchmarks.md, Design measurements), and a GET
    or a refused body uses none of them."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._compiled: re.Pattern[str] | None = None

    def _regex(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self.pattern)
        return self._compiled

    def search(self, text: str) -> re.Match[str] | None:
        return self._regex().search(text)

    def sub(self, replacement: str, text: str) -> str:
        return self._regex().sub(replacement, text)


# C0 and C1 control characters (NUL included) and lone surrogates, which no text column can
# store and which json.loads lets through from "\\ud800" escapes.
FORBIDDEN_CHARACTERS = LazyPattern("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# The text rule for names and states (`clean_text`), as character classes in the regex syntax
# that Python and ECMA-262 (JSON Schema's dialect) read alike: explicit code points, no `\s`
# (ECMA's includes U+FEFF, Python's does not), so the published pattern is the same rule.
# Astral code points are written as themselves, and kept out of the published pattern's classes
# (`_published_text_pattern`).
# Lone surrogates (not Unicode text: no column can store them) are refused before the rule
# applies, and left out of the pattern: the Rust and Go regex engines behind many validators
# cannot even express them.
_LONE_SURROGATE = LazyPattern("[\ud800-\udfff]")
_CONTROLS = "\\u0000-\\u001f\\u007f-\\u009f"
_LINE_SEPARATORS = "\\u2028\\u2029"
# Bidirectional embeddings, overrides and isolates: "\u202egnirpS" displays as "Springs".
_BIDI_CONTROLS = "\\u202a-\\u202e\\u2066-\\u2069"
# Zero-width non-joiner and joiner: real names need them inside (Persian, Indic scripts).
_JOINERS = "\\u200c\\u200d"
# Every other invisible format character (Unicode category Cf, as of Unicode 15.1; written out
# so the rule does not depend on the Unicode version of Python or of a client).
_FORMAT_BMP = (
    "\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890\\u0891\\u08e2\\u180e\\u200b\\u200e\\u200f"
    "\\u2060-\\u2064\\u206a-\\u206f\\ufeff\\ufff9-\\ufffb"
)
_FORMAT_ASTRAL = ((0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3),
                  (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F))
_FORMAT = _FORMAT_BMP + "".join(f"{chr(low)}-{chr(high)}" for low, high in _FORMAT_ASTRAL)
# Space separators (Unicode Zs), and the control characters Python counts as whitespace.
_SPACES = " \\u00a0\\u1680\\u2000-\\u200a\\u202f\\u205f\\u3000"
_CONTROL_SPACES = "\\t\\n\\u000b\\u000c\\r\\u001c-\\u001f\\u0085"
# Trimmed from both ends: whitespace and invisible format characters (joiners included).
_TRIMMED = _SPACES + _CONTROL_SPACES + _FORMAT + _JOINERS
# Refused anywhere after trimming; bidi controls and line separators even at the ends.
_REFUSED = _CONTROLS + _LINE_SEPARATORS + _BIDI_CONTROLS + _FORMAT


def _published_text_pattern() -> str:
    """The rule as one pattern, for the OpenAPI document: optional trimmed characters, then text
    that starts and ends with a visible character and holds no refused one, then trimmed ones.

    It must compile with and without ECMA's `u` flag (Spectral and /docs use neither): without
    it an astral character is two UTF-16 units, and one in a character class breaks the class.
    So astral format characters are an alternation of literal characters (one code point with
    `u` and in Python, a surrogate pair without), kept out by a lookahead, and the classes list
    BMP characters only: a negated class still lets other astral characters through whole.
    """
    astral = "|".join(chr(code) for low, high in _FORMAT_ASTRAL for code in range(low, high + 1))
    trimmed = f"(?:[{_SPACES}{_CONTROL_SPACES}{_FORMAT_BMP}{_JOINERS}]|{astral})"
    refused_bmp = _CONTROLS + _LINE_SEPARATORS + _BIDI_CONTROLS + _FORMAT_BMP
    kept = f"(?!{astral})[^{refused_bmp}]"
    visible = f"(?!{astral})[^{refused_bmp}{_SPACES}{_JOINERS}]"
    return f"^{trimmed}*{visible}(?:{kept}*{visible})?{trimmed}*$"


TEXT_PATTERN = _published_text_pattern()
_TRIM = LazyPattern(f"^[{_TRIMMED}]+|[{_TRIMMED}]+\\Z")
_REFUSED_CHARACTER = LazyPattern(f"[{_REFUSED}]")
# A search term (`q`): no control characters, bidi controls or line separators; it is matched
# as a substring, so it is neither trimmed nor required to start with a visible character.
# `(?![\s\S])` is the end in both dialects (a Python `$` also matches before a final newline).
_SEARCH_REFUSED = _CONTROLS + _LINE_SEPARATORS + _BIDI_CONTROLS
SEARCH_PATTERN = f"^[^{_SEARCH_REFUSED}]+$(?![\\s\\S])"
_SEARCH_REFUSED_CHARACTER = LazyPattern(f"[{_SEARCH_REFUSED}]")
ACCEPTED_CHARSETS = {"utf-8", "utf8"}
BIGINT_MAX = 2**63 - 1

# The OpenAPI schemas of the rules below, beside them so that a rule and its published shape
# change together. What the API returns is the stored form, which matches them too.
TEXT_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TEXT_LENGTH,
    "pattern": TEXT_PATTERN,
    "description": "Stored in Unicode NFKC, with whitespace and invisible format characters "
    "trimmed from both ends. Refused: control, bidirectional and invisible format characters "
    "inside (ZWNJ and ZWJ are kept), line separators, and text that normalization makes longer "
    "than 100 characters.",
}
SEARCH_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TEXT_LENGTH,
    "pattern": SEARCH_PATTERN,
}
WHOLE_NUMBER_SCHEMA = {"type": "integer", "minimum": 0, "maximum": BIGINT_MAX}
ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX}


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
    # Kept for the request: a view the pooler refused runs again (cities.db.connection). 413 past
    # the limit.
    raw = request.get_data()
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
    """(stored form, None) when acceptable, else (None, reason). The rule is `TEXT_PATTERN`.

    The stored form is NFKC (so also NFC): look-alikes such as decomposed accents or full-width
    letters (U+FF3A for "Z") become one spelling, so uniqueness and `q` see them as the same name.
    Whitespace and invisible format characters are trimmed from the ends; inside, only spaces
    and the joiners ZWNJ/ZWJ among invisible characters are kept, anything else is refused.
    """
    if not isinstance(value, str):
        return None, "must be a string"
    if len(value) > MAX_TEXT_LENGTH:
        return None, f"must be at most {MAX_TEXT_LENGTH} characters"
    if _LONE_SURROGATE.search(value):
        return None, "must be valid Unicode (it holds a lone surrogate)"
    text = _TRIM.sub("", unicodedata.normalize("NFKC", value))
    if not text:
        return None, "must not be empty"
    if _REFUSED_CHARACTER.search(text):
        return None, ("must not contain control, bidirectional or invisible format characters "
                      "or line separators")
    if len(text) > MAX_TEXT_LENGTH:  # NFKC may lengthen text ("㎞" is "km")
        return None, f"must be at most {MAX_TEXT_LENGTH} characters once normalized"
    return text, None


def clean_search(value: str) -> tuple[str | None, str | None]:
    """(search term as stored text is written, None), else (None, reason): `SEARCH_PATTERN`."""
    if value == "":
        return None, "must not be empty"
    if len(value) > MAX_TEXT_LENGTH:
        return None, f"must be at most {MAX_TEXT_LENGTH} characters"
    if _SEARCH_REFUSED_CHARACTER.search(value) or _LONE_SURROGATE.search(value):
        return None, "must not contain control or bidirectional characters or line separators"
    return unicodedata.normalize("NFKC", value), None


def whole_number(value: Any) -> tuple[int | None, str | None]:
    """A whole number from 0 to 2**63-1 (a bigint column), such as a population. As in JSON
    Schema, 5.0 is the integer 5; true is no number (bool is an int subclass in Python)."""
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        return None, "must be a whole number"
    if not 0 <= value <= BIGINT_MAX:
        return None, f"must be from 0 to {BIGINT_MAX}"
    return value, None


def whole_number_text(raw: str) -> tuple[int | None, str | None]:
    """A whole number given as text (a query parameter): ASCII digits, then as `whole_number`
    says."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None, f"must be a whole number from 0 to {BIGINT_MAX}"
    return whole_number(int(raw))


def an_id(value: Any) -> tuple[int | None, str | None]:
    """An item's id, 1 to 2**63-1, as a field referring to another resource holds it."""
    number, reason = whole_number(value)
    if reason or number == 0:
        return None, reason or f"must be from 1 to {BIGINT_MAX}"
    return number, None


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def body_fields(resource: Any, body: Any, *, partial: bool) -> dict[str, Any]:
    """The checked fields of a body for `resource` (a cities.resources.resource.Resource).

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
