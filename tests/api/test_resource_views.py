"""The operations of a resource are named views (cities.http.resource_api.ResourceViews), one
method each, so a traceback and a profile name the operation; a resource may override one verb
(tests/support/resources/district.py: `DistrictViews.get_item`) and keep the others."""

from __future__ import annotations

import cProfile
import pstats

import pytest

from cities.http.resource_api import ResourceViews
from tests.support.resources.district import DistrictViews

OPERATIONS = {"list": "list_items", "create": "create_item", "get": "get_item",
              "replace": "replace_item", "update": "update_item", "delete": "delete_item"}


@pytest.fixture
def client(resources_client):
    return resources_client


@pytest.mark.parametrize("endpoint", OPERATIONS)
def test_every_route_is_served_by_a_named_method(client, endpoint):
    view = client.app.view_functions[f"cities.{endpoint}"]
    assert view.__qualname__ == f"ResourceViews.{OPERATIONS[endpoint]}"
    assert view.__func__ is getattr(ResourceViews, OPERATIONS[endpoint])


def test_a_profile_names_the_operation(client, sql):
    created = client.post("/cities", {"name": "Salzburg", "state": "Salzburg"}).json
    profile = cProfile.Profile()
    profile.runcall(client.get, f"/cities/{created['id']}")
    names = {(file.rsplit("/", 1)[-1], name)
             for file, _, name in pstats.Stats(profile).stats}
    assert ("resource_api.py", "get_item") in names
    assert ("resource_api.py", "create_item") not in names


def test_a_resource_overrides_one_verb_and_keeps_the_others(client):
    views = client.app.view_functions
    assert views["districts.get"].__func__ is DistrictViews.get_item
    for endpoint in ("list", "create", "replace", "update", "delete"):
        assert views[f"districts.{endpoint}"].__func__ is getattr(ResourceViews,
                                                                  OPERATIONS[endpoint])
    assert views["regions.get"].__func__ is ResourceViews.get_item  # its own resource only


def test_the_overridden_get_links_a_district_to_its_region(client, sql):
    region = client.post("/regions", {"name": "Tirol", "iso_code": "TR"}).json
    district = client.post("/districts", {"name": "Kufstein", "region_id": region["id"]}).json
    url = f"/districts/{district['id']}"

    reply = client.get(url)
    assert (reply.status, reply.json) == (200, district)
    assert reply.header("Link") == f'</regions/{region["id"]}>; rel="up"'
    up = reply.header("Link").split(">")[0][1:]
    assert client.get(up).json == region
    # The shared behaviour around it holds: conditional GET, 404, and the other verbs.
    assert client.get(url, headers={"If-None-Match": reply.header("ETag")}).status == 304
    assert client.get("/districts/999").status == 404
    patched = client.patch(url, {"name": "Kitzbühel"})
    assert patched.status == 200 and patched.header("Link") is None
