"""`district`: a resource referring to another (`region_id` -> region), declared as
docs/extending.md, "Relations", says, to prove that the 422 of an unknown region, the 409 of
deleting a region still referenced, their OpenAPI entries and the foreign key's index come from
the declaration; a declared range filter (`min_population`), whose plans
tests/db/test_list_plans.py reads; and one verb of its own (`DistrictViews.get_item`), to prove
that a resource overrides one operation while the others and the routes stay shared
(tests/api/test_resource_views.py).

Only the tests serve it (conftest.py creates its table and builds an app with it).
"""

from __future__ import annotations

from flask import Response, url_for

from cities.http.resource_api import ResourceViews
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


class DistrictViews(ResourceViews):
    """A district's GET also links to its region (`Link: <...>; rel="up"`); every other
    operation is the shared one."""

    def get_item(self, **path: str) -> Response:
        response = super().get_item(**path)
        if response.status_code == 200:
            up = url_for("regions.get", region_id=response.get_json()["region_id"])
            response.headers["Link"] = f'<{up}>; rel="up"'
        return response


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
    views=DistrictViews,
)
