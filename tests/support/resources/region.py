"""`region`: a second resource, declared as docs/extending.md, "Adding a resource", says, to prove
that CRUD, paging, sorting, idempotent creates, conflicts and OpenAPI come from shared code.

Only the tests serve it (conftest.py applies its migration and builds an app with it).
"""

from __future__ import annotations

import re
from typing import Any

from cities.resources.resource import Field, Resource, Sort, Unique
from cities.resources.validation import TEXT_SCHEMA, WHOLE_NUMBER_SCHEMA, clean_text, whole_number

_ISO_CODE = re.compile("[A-Z]{2}")
ISO_CODE_SCHEMA = {"type": "string", "minLength": 2, "maxLength": 2, "pattern": "^[A-Za-z]{2}$"}


def iso_code(value: Any) -> tuple[str | None, str | None]:
    """Two ASCII letters, stored in capitals (ISO 3166-1 alpha-2 shape)."""
    if not isinstance(value, str):
        return None, "must be a string"
    value = value.upper()
    if not (value.isascii() and _ISO_CODE.fullmatch(value)):
        return None, "must be two letters"
    return value, None


REGION = Resource(
    singular="region",
    plural="regions",
    fields=(
        Field("name", clean_text, TEXT_SCHEMA),
        Field("iso_code", iso_code, ISO_CODE_SCHEMA),
        Field("population", whole_number, WHOLE_NUMBER_SCHEMA, required=False, nullable=True),
    ),
    # population is nullable: its sort says where NULLs go (-population: first, the reverse).
    sorts=(Sort("name", "lower({})"), Sort("iso_code"), Sort("population", nulls="last")),
    uniques=(
        Unique("region_name_key", "A region with this name already exists.",
               (("name", "is already taken"),),
               "Another region already has this name (case-insensitive)."),
        Unique("region_iso_code_key", "A region with this ISO code already exists.",
               (("iso_code", "is already taken"),),
               "Another region already has this ISO code."),
    ),
)
