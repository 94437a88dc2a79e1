"""Relations: a field declared as a reference to another resource (tests/support/resources/
district.py: `region_id` -> region, ON DELETE RESTRICT). An id naming no region is a 422 on that
field, deleting a region still referenced is a 409, both are documented, and the foreign key and
its index exist as declared."""

from __future__ import annotations

import pytest

from cities.resources.city import CITY
from cities.resources.resource import CASCADE, RESTRICT, SET_NULL, Field, Reference, Resource
from cities.resources.validation import ID_SCHEMA, TEXT_SCHEMA, an_id, clean_text
from tests.api.test_resources import missing_indexes
from tests.support.resources.district import DISTRICT
from tests.support.resources.region import REGION

# pg_constraint.confdeltype: what ON DELETE each declared action may be written as.
ON_DELETE = {RESTRICT: {"r", "a"}, CASCADE: {"c"}, SET_NULL: {"n"}}


@pytest.fixture
def client(resources_client):
    return resources_client


@pytest.fixture
def region(client) -> dict:
    reply = client.post("/regions", {"name": "Bretagne", "iso_code": "BZ"})
    assert reply.status == 201
    return reply.json


def test_a_district_refers_to_an_existing_region(client, region):
    reply = client.post("/districts", {"name": "Finistère", "region_id": region["id"]})
    assert (reply.status, reply.json["region_id"]) == (201, region["id"])


def test_an_id_naming_no_region_is_422_on_that_field(client, region, sql):
    reply = client.post("/districts", {"name": "Nowhere", "region_id": region["id"] + 1})
    assert (reply.status, reply.error_code, reply.detail_fields) == (
        422, "validation_failed", ["region_id"])
    assert "region" in reply.json["error"]["details"][0]["message"]
    assert sql("SELECT count(*) FROM district") == [(0,)]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_a_write_moving_a_district_to_no_region_is_422_and_changes_nothing(
        client, region, method):
    district = client.post("/districts", {"name": "Morbihan", "region_id": region["id"]}).json
    url = f"/districts/{district['id']}"
    reply = client.request(method, url, {"name": "Morbihan", "region_id": 999})
    assert (reply.status, reply.detail_fields) == (422, ["region_id"])
    assert client.get(url).json == district


def test_deleting_a_region_still_referenced_is_409_until_its_districts_go(client, region):
    district = client.post("/districts", {"name": "Côtes-d'Armor", "region_id": region["id"]})
    reply = client.delete(f"/regions/{region['id']}")
    assert (reply.status, reply.error_code) == (409, "conflict")
    assert "districts (region_id)" in reply.json["error"]["message"]
    assert client.get(f"/regions/{region['id']}").status == 200

    assert client.delete(f"/districts/{district.json['id']}").status == 200
    assert client.delete(f"/regions/{region['id']}").status == 200


def test_the_document_describes_both_refusals(client):
    spec = client.get("/openapi.json").json
    region_delete = spec["paths"]["/regions/{id}"]["delete"]["responses"]
    assert "districts (`region_id`)" in region_delete["409"]["description"]
    for path, method in (("/districts", "post"), ("/districts/{id}", "put"),
                         ("/districts/{id}", "patch")):
        assert "region_id" in spec["paths"][path][method]["responses"]["422"]["description"]
    assert "region" in spec["components"]["schemas"]["DistrictInput"]["properties"][
        "region_id"]["description"]
    # nothing refers to a city, and a district's list has no body to check
    assert "409" not in spec["paths"]["/cities/{id}"]["delete"]["responses"]
    assert "region_id" not in spec["paths"]["/districts"]["get"]["responses"]["422"]["description"]


def test_every_declared_reference_is_a_foreign_key_as_declared(sql):
    for reference in DISTRICT.references:
        rows = sql(
            "SELECT confrelid::regclass::text, confdeltype, a.attname FROM pg_constraint c "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) "
            "WHERE c.contype = 'f' AND c.conname = %s AND c.conrelid = %s::regclass",
            (reference.constraint, DISTRICT.table))
        assert len(rows) == 1, f"no foreign key {reference.constraint}: add it in a migration"
        target, action, column = rows[0]
        assert (target, column) == (reference.target.table, reference.field)
        assert action in ON_DELETE[reference.on_delete]


def test_the_index_a_reference_needs_is_required(sql):
    target = Resource(singular="city", plural="cities", fields=CITY.fields)  # not REGION's
    drifted = Resource(singular="district", plural="districts",
                       fields=(Field("name", clean_text, TEXT_SCHEMA),),
                       references=(Reference("name", target),))
    assert missing_indexes(sql, drifted) == ["district (name)"]
    assert missing_indexes(sql, DISTRICT) == []


def test_set_null_needs_a_nullable_field():
    with pytest.raises(ValueError, match="region_id"):
        Resource(singular="orphan", plural="orphans",
                 fields=(Field("region_id", an_id, ID_SCHEMA),),
                 references=(Reference("region_id", REGION, on_delete=SET_NULL),))
