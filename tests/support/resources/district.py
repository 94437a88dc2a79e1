"""`district`: a resource referring to another (`region_id` -> region), declared as the README's
"Relations" says, to prove that the 422 of an unknown region, the 409 of deleting a region still
referenced, their OpenAPI entries and the foreign key's index come from the declaration; and
a declared range filter (`min_population`), whose plans tests/db/test_list_plans.py reads.

Only the tests serve it (conftest.py creates its table and builds an app with it).
"""

from __future__ import annotations

from cities.resources.resource import RESTRICT, Field, Range, Reference, Resource, Sort
from cities.resources.validation import (
    ID_SCHEMA,
    TEXT_SCHEMA,
    WHOLE_NUMBER_SCHEMA,
    an_id,
    clean_text,
    whole_number,
    whole_number_text,
)
from tests.support.resources.region import REGION

DISTRICT = Resource(
    singular="district",
    plural="districts",
    fields=(
        Field("name", clean_text, TEXT_SCHEMA),
        Field("region_id", an_id, ID_SCHEMA),
        Field("population", whole_number, WHOLE_NUMBER_SCHEMA, required=False),
    ),
    sorts=(Sort("name", "lower({})"), Sort("population")),
    filters=(Range("min_population", "population", ">=", whole_number_text, WHOLE_NUMBER_SCHEMA,
                   "Only districts of at least this population."),),
    references=(Reference("region_id", REGION, on_delete=RESTRICT),),
)
