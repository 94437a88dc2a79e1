"""Every Lambda front door: HTTP API, REST API, Function URL and ALB events, and the URLs the API
generates (`Location`, `Link`) as each client sees them."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.lambda_events import (
    ALB_HOST,
    CUSTOM_DOMAIN,
    FUNCTION_URL_HOST,
    HTTP_API_HOST,
    REST_API_HOST,
    Client,
    alb_event,
    function_url_event,
    http_api_event,
    rest_api_event,
    to_reply,
)

FRONT_DOORS = {
    "http-api": (http_api_event, f"https://{HTTP_API_HOST}"),
    "rest-api-dev-stage": (rest_api_event, f"https://{REST_API_HOST}/dev"),
    "function-url": (function_url_event, f"https://{FUNCTION_URL_HOST}"),
    # An ALB forwards whatever Host the client sent: without PUBLIC_HOSTS, URLs are relative.
    "alb": (alb_event, ""),
}


@pytest.fixture(params=list(FRONT_DOORS))
def door(request, handler_module, sql):
    make_event, base = FRONT_DOORS[request.param]
    return Client(handler_module.api, make_event), base


def test_full_crud_through_each_front_door(door):
    client, base = door
    created = client.post("/cities", {"name": "Lyon", "state": "Rhône"})
    assert created.status == 201
    city = created.json
    assert created.header("Location") == f"{base}/cities/{city['id']}"

    assert client.get(f"/cities/{city['id']}").json == city
    assert client.patch(f"/cities/{city['id']}", {"state": "Auvergne-Rhône-Alpes"}).status == 200
    assert client.put(f"/cities/{city['id']}", {"name": "Lyon", "state": "ARA"}).json["state"] == (
        "ARA"
    )
    listed = client.get("/cities", query={"state": "ara"})
    assert [c["id"] for c in listed.json] == [city["id"]]
    assert client.delete(f"/cities/{city['id']}").status == 200
    assert client.get(f"/cities/{city['id']}").status == 404


def test_base64_bodies_through_each_front_door(door):
    client, _ = door
    reply = client.post("/cities", {"name": "Köln", "state": "NRW"}, base64_body=True)
    assert reply.status == 201
    assert reply.json["name"] == "Köln"


def test_next_links_through_each_front_door(door, sql):
    client, base = door
    for n in range(3):
        sql("INSERT INTO city (name, state) VALUES (%s, 'S')", (f"Town {n}",))
    reply = client.get("/cities", query={"limit": "2", "q": "town"})
    url = re.fullmatch(r'<([^>]+)>; rel="next"', reply.header("Link"))[1]
    assert url.startswith(f"{base}/cities?")
    params = parse_qs(urlsplit(url).query)
    nxt = client.get("/cities", query={"limit": "2", "q": "town", "cursor": params["cursor"][0]})
    assert [c["name"] for c in nxt.json] == ["Town 2"]


def test_errors_through_each_front_door_are_json(door):
    client, _ = door
    for reply in (client.get("/nowhere"), client.post("/cities", "{"), client.get("/cities/x")):
        assert reply.header("Content-Type") == "application/json"
        assert "error" in reply.json


def test_rest_api_on_its_execute_api_host_keeps_the_stage(handler_module, sql):
    client = Client(handler_module.api, rest_api_event)
    reply = client.post("/cities", {"name": "Oslo", "state": "Oslo"}, stage="prod")
    assert reply.header("Location") == f"https://{REST_API_HOST}/prod/cities/{reply.json['id']}"


def test_rest_api_on_a_custom_domain_has_no_stage_prefix(handler_module, sql):
    client = Client(handler_module.api, rest_api_event)
    reply = client.post("/cities", {"name": "Oslo", "state": "Oslo"}, host=CUSTOM_DOMAIN)
    assert reply.header("Location") == f"https://{CUSTOM_DOMAIN}/cities/{reply.json['id']}"


@pytest.mark.parametrize("make_event", [http_api_event, rest_api_event])
def test_custom_domain_base_path_is_configurable(handler_module, sql, monkeypatch, make_event):
    """A custom domain mapping `https://api.example.com/v1` to the API."""
    monkeypatch.setenv("API_GATEWAY_BASE_PATH", "v1")
    client = Client(handler_module.api, make_event)
    reply = client.post("/v1/cities", {"name": "Bergen", "state": "Vestland"}, host=CUSTOM_DOMAIN)
    assert reply.status == 201
    location = reply.header("Location")
    assert location == f"https://{CUSTOM_DOMAIN}/v1/cities/{reply.json['id']}"
    assert client.get(urlsplit(location).path, host=CUSTOM_DOMAIN).json == reply.json


def test_http_api_named_stage_is_kept_in_urls_and_stripped_from_routing(handler_module, sql):
    client = Client(handler_module.api, http_api_event)
    reply = client.post("/cities", {"name": "Rome", "state": "Lazio"}, stage="staging")
    assert reply.status == 201
    city_id = reply.json["id"]
    assert reply.header("Location") == f"https://{HTTP_API_HOST}/staging/cities/{city_id}"
    assert client.get(f"/cities/{city_id}", stage="staging").status == 200


def test_http_api_default_stage_adds_no_prefix(handler_module, sql):
    client = Client(handler_module.api, http_api_event)
    reply = client.post("/cities", {"name": "Rome", "state": "Lazio"})
    assert "$default" not in reply.header("Location")
    assert urlsplit(reply.header("Location")).path == f"/cities/{reply.json['id']}"


def test_rest_api_multi_value_query_parameters_reach_the_app(handler_module, sql):
    client = Client(handler_module.api, rest_api_event)
    reply = client.get("/cities?limit=1&limit=2")
    assert reply.status == 422
    assert reply.detail_fields == ["limit"]


# --- the Host header never writes a URL -----------------------------------------------------

EVIL = "evil.example"


def created_urls(client: Client, sql, name: str = "Oslo", **kwargs) -> tuple[str, str]:
    """(Location of a new city, Link to a list's next page) as this client sees them."""
    sql("INSERT INTO city (name, state) VALUES ('A', 'S'), ('B', 'S') ON CONFLICT DO NOTHING")
    location = client.post("/cities", {"name": name, "state": "Oslo"}, **kwargs).header(
        "Location")
    link = client.get("/cities", query={"limit": "1"}, **kwargs).header("Link")
    return location, link


@pytest.mark.parametrize("make_event", [http_api_event, rest_api_event, function_url_event])
def test_on_api_gateway_urls_name_the_domain_the_gateway_reports(handler_module, sql, make_event):
    client = Client(handler_module.api, make_event)
    location, link = created_urls(client, sql, headers={"host": EVIL})
    for url in (location, link):
        assert EVIL not in url
    domain = make_event("GET", "/")["requestContext"]["domainName"]
    assert urlsplit(location).hostname == domain


def test_behind_an_alb_an_untrusted_host_gives_relative_urls(handler_module, sql):
    location, link = created_urls(Client(handler_module.api, alb_event), sql,
                                  headers={"host": EVIL})
    assert location.startswith("/cities/") and link.startswith("</cities?")


def test_behind_an_alb_public_hosts_lists_the_trusted_names(handler_module, sql, monkeypatch):
    monkeypatch.setitem(handler_module.app.config, "PUBLIC_HOSTS", (ALB_HOST, "api.example.org"))
    client = Client(handler_module.api, alb_event)
    location, link = created_urls(client, sql, headers={"host": "API.example.org"})
    assert location.startswith("https://api.example.org/cities/")
    assert link.startswith("<https://api.example.org/cities?")
    assert created_urls(client, sql, "Bergen", headers={"host": EVIL})[0].startswith("/cities/")


def test_behind_cloudfront_urls_name_the_distribution_public_hosts_lists(
    handler_module, sql, monkeypatch
):
    """The stage's CloudFront sends its viewers' host as X-Forwarded-Host (deploy/cdn.yml) and
    the template lists its domain in PUBLIC_HOSTS: URLs lead back through the cache. Any other
    X-Forwarded-Host, sent straight to the gateway, is ignored."""
    cdn = "d111111abcdef8.cloudfront.net"
    client = Client(handler_module.api, http_api_event)
    monkeypatch.setitem(handler_module.app.config, "PUBLIC_HOSTS", (cdn,))
    location, link = created_urls(client, sql, headers={"x-forwarded-host": cdn.upper()})
    assert location.startswith(f"https://{cdn}/cities/")
    assert link.startswith(f"<https://{cdn}/cities?")
    location, link = created_urls(client, sql, "Bergen", headers={"x-forwarded-host": EVIL})
    assert urlsplit(location).hostname == HTTP_API_HOST
    monkeypatch.setitem(handler_module.app.config, "PUBLIC_HOSTS", ())
    location, _ = created_urls(client, sql, "Tromsø", headers={"x-forwarded-host": cdn})
    assert urlsplit(location).hostname == HTTP_API_HOST


@pytest.mark.parametrize(("host", "absolute"), [
    (EVIL, False), (f"{EVIL}:5000", False), ("localhost:5000", True), ("127.0.0.1:8000", True),
    ("[::1]:5000", True), ("localhost.evil.example", False), ("127.0.0.1@evil.example", False),
    ("127.0.0.1:5000/evil", False), ("", False),
])
def test_the_local_server_trusts_only_names_of_this_machine(app, sql, host, absolute):
    """`python -m cities serve`: plain WSGI, no Lambda event."""
    reply = app.test_client().post("/cities", json={"name": "Oslo", "state": "Oslo"},
                                   headers={"Host": host})
    assert reply.status_code == 201
    location = reply.headers["Location"]
    if absolute:
        assert location == f"http://{host}/cities/{reply.json['id']}"
    else:
        assert location == f"/cities/{reply.json['id']}"


def test_the_offline_emulators_placeholder_domain_is_not_a_host(handler_module, sql):
    event = http_api_event("POST", "/cities", {"name": "Oslo", "state": "Oslo"},
                           host="127.0.0.1:3000")
    event["requestContext"]["domainName"] = "offlineContext_domainName"
    reply = to_reply(handler_module.api(event, None))
    assert reply.header("Location").startswith("https://127.0.0.1:3000/cities/")


def test_warmup_events_are_ignored(handler_module):
    assert handler_module.api({"source": "serverless-plugin-warmup"}, None) == {}


# --- what proxies and odd clients send ------------------------------------------------------


def test_chunked_transfer_encoding_in_the_event_does_not_hide_the_body(client):
    reply = client.post("/cities", {"name": "Chunk", "state": "Ed"},
                        headers={"transfer-encoding": "chunked"})
    assert reply.status == 201


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "gzip, identity"])
def test_compressed_bodies_are_415(client, sql, encoding):
    import gzip
    import json

    body = gzip.compress(json.dumps({"name": "Zip", "state": "Ped"}).encode())
    reply = client.post("/cities", body, headers={"content-encoding": encoding})
    assert reply.status == 415
    assert reply.error_code == "unsupported_media_type"
    assert sql("SELECT count(*) FROM city") == [(0,)]


def test_duplicate_headers_through_the_rest_api(handler_module, sql):
    event = rest_api_event("POST", "/cities", {"name": "Dup", "state": "Licate"})
    event["multiValueHeaders"]["Content-Type"] = ["application/json", "text/plain"]
    event["multiValueHeaders"]["X-Forwarded-For"] = ["198.51.100.1", "203.0.113.9"]
    reply = to_reply(handler_module.api(event, None))
    assert reply.status in (201, 415)


def test_comma_joined_duplicate_content_types_are_415(client):
    reply = client.post("/cities", {"name": "A", "state": "B"},
                        headers={"content-type": "application/json,application/json"})
    assert reply.status == 415


def test_huge_and_many_headers_are_harmless(client):
    headers = {f"x-filler-{n}": "v" * 1000 for n in range(100)}
    headers["cookie"] = "c" * 8000
    assert client.get("/cities", headers=headers).status == 200


@pytest.mark.parametrize("path", ["/cities/%FF", "/cities/%C0%AF", "/%E2%82", "/cities/1%00"])
def test_invalid_utf8_and_nul_in_paths_are_404(client, path):
    reply = client.get(path)
    assert reply.status == 404
    assert reply.error_code == "not_found"


@pytest.mark.parametrize("query", ["state=%FF", "q=%C0%AF", "q=%00", "sort=%FF%FE", "%FF=1"])
def test_invalid_utf8_and_nul_in_queries_are_never_500(client, query):
    reply = client.get(f"/cities?{query}")
    assert reply.status in (200, 422)


def test_a_body_flagged_base64_that_is_not_is_400(handler_module, sql):
    event = http_api_event("POST", "/cities", "not base64 at all!")
    event["isBase64Encoded"] = True
    reply = to_reply(handler_module.api(event, None))
    assert reply.status == 400
    assert reply.error_code == "bad_request"
    assert sql("SELECT count(*) FROM city") == [(0,)]


def test_an_event_without_headers_is_answered(handler_module, sql):
    event = http_api_event("GET", "/cities")
    del event["headers"]
    reply = to_reply(handler_module.api(event, None))
    assert reply.status in (200, 400)
    event = rest_api_event("GET", "/cities")
    event["headers"] = None
    event["multiValueHeaders"] = None
    assert to_reply(handler_module.api(event, None)).status == 200
