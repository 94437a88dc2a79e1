"""The contract every declared resource gets from the shared code, checked for city and for the
test-only region (tests/support/resources/region.py) alike: CRUD, 404, 409, 422, idempotent
creates, paging in every declared sort, OpenAPI, and the indexes the list queries rely on."""

from __future__ import annotations

import re
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
from openapi_spec_validator import validate

from cities.resources.city import CITY
from cities.resources.resource import Resource
from tests.conftest import served_operations
from tests.support.lambda_events import HTTP_API_HOST
from tests.support.resources.district import DISTRICT
from tests.support.resources.region import REGION


class Case(NamedTuple):
    resource: Resource
    body: dict[str, Any]  # a valid create body
    other: dict[str, Any]  # another one, conflicting with nothing
    clash: dict[str, Any]  # valid, but taken once `body` exists (another case, say)
    clash_fields: set[str]  # the fields its 409 names
    invalid: dict[str, Any]  # every field wrong, and one unknown: 422 naming each
    invalid_fields: set[str]

    @property
    def path(self) -> str:
        return f"/{self.resource.plural}"


CASES = [
    Case(CITY, {"name": "Springfield", "state": "Illinois"}, {"name": "Salem", "state": "Oregon"},
         {"name": "SPRINGFIELD", "state": " illinois "}, {"name", "state"},
         {"name": "", "state": 5, "mayor": "x"}, {"name", "state", "mayor"}),
    Case(REGION, {"name": "France", "iso_code": "FR", "population": 68_000_000},
         {"name": "Japan", "iso_code": "jp"}, {"name": "Francia", "iso_code": "fr"}, {"iso_code"},
         {"name": "x" * 101, "iso_code": "FRA", "population": -1, "capital": "Paris"},
         {"name", "iso_code", "population", "capital"}),
]


@pytest.fixture(params=CASES, ids=lambda case: case.resource.plural)
def case(request) -> Case:
    return request.param


@pytest.fixture
def client(resources_client):
    return resources_client


def created(client, case: Case, body: dict | None = None) -> dict:
    reply = client.post(case.path, body or case.body)
    assert reply.status == 201, reply
    return reply.json


def expected(resource: Resource, body: dict) -> dict:
    """What the API stores for a valid body: each field through its rule, absent ones null."""
    out = {}
    for field in resource.fields:
        value = body.get(field.name)
        out[field.name] = None if value is None else field.rule(value)[0]
    return out


def fields_of(item: dict, resource: Resource) -> dict:
    return {f.name: item[f.name] for f in resource.fields}


# --- CRUD -------------------------------------------------------------------------------------


def test_create_answers_201_with_the_item_and_its_location(client, case, sql):
    reply = client.post(case.path, case.body)
    assert reply.status == 201
    item = reply.json
    assert list(item) == list(case.resource.column_names)
    assert fields_of(item, case.resource) == expected(case.resource, case.body)
    assert item["created_at"] == item["updated_at"]
    assert reply.header("Location") == f"https://{HTTP_API_HOST}{case.path}/{item['id']}"
    assert client.follow(reply.header("Location")).json == item
    assert sql(f"SELECT count(*) FROM {case.resource.table}") == [(1,)]


def test_put_replaces_patch_changes_only_what_is_given(client, case):
    item = created(client, case)
    replaced = client.put(f"{case.path}/{item['id']}", case.other)
    assert replaced.status == 200
    assert fields_of(replaced.json, case.resource) == expected(case.resource, case.other)
    assert replaced.json["updated_at"] > item["updated_at"]
    assert replaced.json["created_at"] == item["created_at"]

    name = case.resource.fields[0].name
    patched = client.patch(f"{case.path}/{item['id']}", {name: "Renamed"})
    assert patched.status == 200
    assert fields_of(patched.json, case.resource) == {
        **expected(case.resource, case.other), name: "Renamed"}
    assert client.get(f"{case.path}/{item['id']}").json == patched.json


def test_delete_answers_the_deleted_item_then_404(client, case, sql):
    item = created(client, case)
    assert client.delete(f"{case.path}/{item['id']}").json == item
    assert client.delete(f"{case.path}/{item['id']}").status == 404
    assert sql(f"SELECT count(*) FROM {case.resource.table}") == [(0,)]


@pytest.mark.parametrize("raw_id", ["999", "abc", "0", str(2**63)])
def test_missing_or_malformed_ids_are_404_on_every_item_method(client, case, raw_id):
    created(client, case)
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        body = case.other if method in ("PUT", "PATCH") else None
        reply = client.request(method, f"{case.path}/{raw_id}", body)
        assert (reply.status, reply.error_code) == (404, "not_found"), (method, reply)
        assert case.resource.singular in reply.json["error"]["message"]


# --- conflicts and invalid bodies -------------------------------------------------------------


def test_a_taken_unique_value_is_409_naming_the_declared_fields(client, case, sql):
    first = created(client, case)
    second = created(client, case, case.other)
    reply = client.post(case.path, case.clash)
    assert (reply.status, reply.error_code) == (409, "conflict")
    assert set(reply.detail_fields) == case.clash_fields
    messages = {u.message for u in case.resource.uniques}
    assert reply.json["error"]["message"] in messages

    for method in ("PUT", "PATCH"):
        reply = client.request(method, f"{case.path}/{second['id']}", case.clash)
        assert reply.status == 409
    assert client.get(f"{case.path}/{second['id']}").json == second
    assert client.get(f"{case.path}/{first['id']}").json == first


def test_every_offending_field_is_listed_in_one_422(client, case, sql):
    reply = client.post(case.path, case.invalid)
    assert (reply.status, reply.error_code) == (422, "validation_failed")
    assert set(reply.detail_fields) == case.invalid_fields
    assert sql(f"SELECT count(*) FROM {case.resource.table}") == [(0,)]


def test_required_fields_are_required_and_an_empty_patch_is_422(client, case):
    item = created(client, case)
    required = {f.name for f in case.resource.fields if f.required}
    assert set(client.post(case.path, {}).detail_fields) == required
    assert set(client.put(f"{case.path}/{item['id']}", {}).detail_fields) == required
    assert client.patch(f"{case.path}/{item['id']}", {}).detail_fields == ["body"]


# --- idempotent creates -----------------------------------------------------------------------


def test_an_idempotent_retry_replays_the_first_response(client, case, sql):
    first = client.post(case.path, case.body, headers={"idempotency-key": "k"})
    retry = client.post(case.path, case.body, headers={"idempotency-key": "k"})
    assert (retry.status, retry.json) == (201, first.json)
    assert retry.header("Idempotent-Replayed") == "true"
    assert sql(f"SELECT count(*) FROM {case.resource.table}") == [(1,)]


def test_idempotency_keys_are_scoped_per_collection(client, sql):
    key = {"idempotency-key": "same-key"}
    city = client.post("/cities", CASES[0].body, headers=key)
    region = client.post("/regions", CASES[1].body, headers=key)
    assert (city.status, region.status) == (201, 201)
    assert region.header("Idempotent-Replayed") is None
    assert set(region.json) == set(REGION.column_names)
    assert client.post("/regions", CASES[1].body, headers=key).json == region.json
    assert client.post("/cities", CASES[0].body, headers=key).json == city.json


# --- paging -----------------------------------------------------------------------------------


def next_url(reply) -> str | None:
    link = reply.header("Link")
    return None if link is None else re.fullmatch(r'<([^>]+)>; rel="next"', link)[1]


def many(client, case: Case, count: int) -> list[dict]:
    """`count` valid items whose first field sorts differently from their id."""
    bodies = []
    for n in range(count):
        body = dict(case.other)
        body[case.resource.fields[0].name] = f"{'zyxwvutsrq'[n % 10]} item {n:02d}"
        if "iso_code" in body:
            body["iso_code"] = "AB"[n % 2] + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[n]
        if "population" in case.resource.field:  # NULLs and ties among values, ids across them
            body["population"] = (None, 7, 3)[n % 3]
        bodies.append(created(client, case, body))
    return bodies


@pytest.mark.parametrize("direction", ["", "-"])
def test_walking_each_declared_sort_visits_every_item_once_in_order(client, case, direction):
    items = many(client, case, 11)
    for sort in case.resource.sorts:
        name, null_rank = sort.field, 1 if sort.nulls == "last" else -1

        def key(item: dict, name: str = name, null_rank: int = null_rank) -> tuple:
            value = item[name]
            if value is None:
                return (null_rank, 0, item["id"])
            return (0, value.lower() if isinstance(value, str) else value, item["id"])

        want = sorted(items, key=key)
        if direction:
            want.reverse()
        seen, url = [], f"{case.path}?limit=3&sort={direction}{name}"
        while url:
            reply = client.follow(url) if url.startswith("https") else client.get(url)
            assert reply.status == 200, reply
            seen += reply.json
            url = next_url(reply)
        assert [i["id"] for i in seen] == [i["id"] for i in want], name


def test_a_cursor_is_valid_only_for_the_collection_that_issued_it(client, sql):
    many(client, CASES[0], 3)
    many(client, CASES[1], 3)
    for issuer, other in (("/cities", "/regions"), ("/regions", "/cities")):
        cursor = parse_qs(urlsplit(next_url(client.get(f"{issuer}?limit=1"))).query)["cursor"][0]
        assert client.get(issuer, query={"limit": "1", "cursor": cursor}).status == 200
        reply = client.get(other, query={"limit": "1", "cursor": cursor})
        assert (reply.status, reply.detail_fields) == (422, ["cursor"])


def test_a_parameter_the_resource_does_not_declare_is_422(client):
    reply = client.get("/regions", query={"state": "Texas", "sort": "area"})
    assert reply.status == 422
    assert sorted(reply.detail_fields) == ["sort", "state"]


# --- fields that are optional or nullable (region.population) --------------------------------


def test_patch_tells_an_explicit_null_from_an_absent_field(client):
    item = created(client, CASES[1])
    assert item["population"] == 68_000_000
    kept = client.patch(f"/regions/{item['id']}", {"name": "République française"})
    assert kept.json["population"] == 68_000_000
    cleared = client.patch(f"/regions/{item['id']}", {"population": None})
    assert (cleared.status, cleared.json["population"]) == (200, None)
    assert client.patch(f"/regions/{item['id']}", {"population": 5}).json["population"] == 5
    assert client.patch(f"/regions/{item['id']}", {"name": None}).detail_fields == ["name"]


def test_put_resets_an_optional_field_left_out_as_a_create_would(client):
    item = created(client, CASES[1])
    reply = client.put(f"/regions/{item['id']}", {"name": "France", "iso_code": "FR"})
    assert (reply.status, reply.json["population"]) == (200, None)


@pytest.mark.parametrize("population", [-1, 1.5, True, "12", 2**63])
def test_an_invalid_count_is_422(client, population):
    reply = client.post("/regions", {"name": "X", "iso_code": "XX", "population": population})
    assert (reply.status, reply.detail_fields) == (422, ["population"])


# --- OpenAPI ----------------------------------------------------------------------------------


def test_the_document_describes_every_served_route_and_validates(client):
    spec = client.get("/openapi.json").json
    validate(spec)
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    served = served_operations(client.app)
    assert documented == served
    assert {"/regions", "/regions/{id}"} <= set(spec["paths"])


def test_responses_match_the_resources_documented_schemas(client, case):
    spec = client.get("/openapi.json").json
    title = case.resource.title

    def check(value: Any, name: str) -> None:
        jsonschema.validate(value, {"$ref": f"#/components/schemas/{name}",
                                    "components": spec["components"]})

    check(case.body, f"{title}Input")
    item = created(client, case)
    check(item, title)
    check(client.post(case.path, case.clash).json, "Error")
    with pytest.raises(jsonschema.ValidationError):
        check(case.invalid, f"{title}Input")
    operations = spec["paths"][f"/{case.resource.plural}/{{id}}"]
    assert {op["operationId"] for op in operations.values()} == {
        f"get{title}", f"replace{title}", f"update{title}", f"delete{title}"}


# --- drift: what the declarations rely on exists in the migrated database ---------------------


def missing_indexes(sql, resource: Resource) -> list[str]:
    """The list orders of `resource` that no b-tree index of its table leads with, compared with
    the indexes' columns exactly as PostgreSQL prints them back (pg_get_indexdef)."""
    rows = sql("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (resource.table,))
    have = [re.search(r"USING btree \((.*)\)$", d)[1] for (d,) in rows if "USING btree" in d]
    missing = []
    for columns in resource.required_indexes():
        wanted = ", ".join(columns)
        if not any(h == wanted or h.startswith(wanted + ", ") for h in have):
            missing.append(f"{resource.table} ({wanted})")
    return missing


def index_advice(missing: list[str]) -> str:
    """What the drift test's failure says: which indexes to write, and why in that very form."""
    statements = "\n".join(f"  CREATE INDEX ... ON {index};" for index in missing)
    return (
        "add these indexes in a migration (cities/db/migrations/NNNN_*.sql):\n"
        f"{statements}\n"
        "The check compares each index's columns as PostgreSQL prints them back (pg_get_indexdef,"
        " the form cities/db/schema.sql shows), since that is the one spelling two equal indexes"
        " share: write them so they print exactly like this (`population ASC NULLS LAST` prints"
        " as `population`; `lower(name)` stays `lower(name)`). An index with more columns after"
        " these serves too. One in another order or direction (say `population DESC NULLS"
        " LAST, id DESC`) can serve some walks but not this declaration's: each sort and its `-`"
        " twin walk one index forwards and backwards, NULLs where the Sort declares them."
    )


DECLARED = [CITY, REGION, DISTRICT]


@pytest.mark.parametrize("resource", DECLARED, ids=lambda resource: resource.plural)
def test_every_list_order_has_its_index(resource, sql):
    missing = missing_indexes(sql, resource)
    assert missing == [], index_advice(missing)


def test_a_sort_declared_without_its_index_is_caught(sql):
    from cities.resources.resource import Field, Sort
    from cities.resources.validation import TEXT_SCHEMA, clean_text

    drifted = Resource(singular="city", plural="cities",
                       fields=(Field("name", clean_text, TEXT_SCHEMA),
                               Field("state", clean_text, TEXT_SCHEMA)),
                       sorts=(Sort("state"),), order_prefixes=CITY.order_prefixes)
    assert missing_indexes(sql, drifted) == [
        "city (state, id)", "city (lower(state), state, id)"]


def test_an_index_with_nulls_elsewhere_than_declared_is_caught(sql):
    """region has (population, id) and (population NULLS FIRST, id); an index written in
    another direction would be missed in the same way, and the message says what to write."""
    from cities.resources.resource import Sort

    for nulls, printed in (("last", "population, id"), ("first", "population NULLS FIRST, id")):
        declared = Resource(singular="region", plural="regions", fields=REGION.fields,
                            sorts=(Sort("population", nulls=nulls),))
        assert f"region ({printed})" not in missing_indexes(sql, declared)
    sql("DROP INDEX region_population_nulls_first_order")
    try:
        declared = Resource(singular="region", plural="regions", fields=REGION.fields,
                            sorts=(Sort("population", nulls="first"),))
        missing = missing_indexes(sql, declared)
        assert missing == ["region (population NULLS FIRST, id)"]
        assert "CREATE INDEX ... ON region (population NULLS FIRST, id);" in index_advice(missing)
    finally:
        sql("CREATE INDEX region_population_nulls_first_order "
            "ON region (population NULLS FIRST, id)")


def test_a_range_filter_requires_each_other_sorts_index_with_its_column():
    assert DISTRICT.required_indexes() == [
        ("id",), ("id", "population"), ("lower(name)", "id"), ("lower(name)", "id", "population"),
        ("population", "id"), ("region_id",)]


def test_every_declared_unique_constraint_exists(case, sql):
    unique = {
        name for name, definition in sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
            (case.resource.table,))
        if definition.startswith("CREATE UNIQUE INDEX")
    }
    for declared in case.resource.uniques:
        assert declared.index in unique


def test_every_declared_field_is_a_column(case, sql):
    columns = {row[0] for row in sql(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
        (case.resource.table,))}
    assert set(case.resource.column_names) <= columns


def test_a_count_written_with_a_zero_fraction_is_that_integer(client):
    """As JSON Schema's `integer` says (the fuzzer found this): 2000.0 is 2000."""
    reply = client.post("/regions", '{"name": "X", "iso_code": "XX", "population": 2000.0}')
    assert (reply.status, reply.json["population"]) == (201, 2000)


def test_a_sort_on_a_nullable_field_declares_where_its_nulls_go():
    from cities.resources.resource import Sort

    with pytest.raises(ValueError, match="population"):
        Resource(singular="region", plural="regions", fields=REGION.fields,
                 sorts=(Sort("population"),))  # keyset paging must know where NULLs are
    with pytest.raises(ValueError, match="name"):
        Resource(singular="region", plural="regions", fields=REGION.fields,
                 sorts=(Sort("name", nulls="last"),))  # a non-null field has none
    with pytest.raises(ValueError, match="first"):
        Sort("population", nulls="never")


def test_a_violated_unique_index_not_declared_is_a_generic_409(client_for):
    undeclared = Resource(singular="region", plural="regions", fields=REGION.fields,
                          uniques=REGION.uniques[:1])  # the iso_code index left out
    client = client_for(RESOURCES=(undeclared,))
    assert client.post("/regions", {"name": "France", "iso_code": "FR"}).status == 201
    reply = client.post("/regions", {"name": "Francia", "iso_code": "FR"})
    assert (reply.status, reply.error_code, reply.detail_fields) == (409, "conflict", [])
