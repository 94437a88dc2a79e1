"""The `city` resource, declared: `/cities` and `/cities/{id}`, their checks, SQL and OpenAPI
come from this declaration through the shared resource code (docs/extending.md, Adding a
resource)."""

from __future__ import annotations

from cities.db import city_filters
from cities.resources.resource import Field, Filter, Resource, Sort, Unique
from cities.resources.validation import SEARCH_SCHEMA, TEXT_SCHEMA, clean_search, clean_text

CITY = Resource(
    singular="city",
    plural="cities",
    fields=(
        # `examples`: what /docs pre-fills, so "Execute" as shown creates a real city.
        Field("name", clean_text, {**TEXT_SCHEMA, "examples": ["Lyon"]}),
        Field("state", clean_text, {**TEXT_SCHEMA, "examples": ["Auvergne-Rhône-Alpes"]}),
    ),
    # Indexes (migration 0001): city_name_order (lower(name), id), and behind a state filter
    # city_state_order (lower(state), id) and city_state_name_order (lower(state), lower(name), id).
    sorts=(Sort("name", "lower({})"),),
    uniques=(
        Unique(
            "city_name_state_key",
            "A city with this name already exists in this state.",
            (("name", "is already taken in this state"), ("state", "see name")),
            "Another city already has this name in this state (case-insensitive).",
        ),
    ),
    filters=(
        Filter("state", clean_text, TEXT_SCHEMA,
               "Only cities in this state (exact, case-insensitive, trimmed)."),
        Filter("q", clean_search, SEARCH_SCHEMA,
               "Case-insensitive substring of the name; `%`, `_`, `\\` are literal."),
    ),
    list_filter=city_filters.list_filter,
    order_prefixes=(city_filters.STATE_ORDER,),
)
