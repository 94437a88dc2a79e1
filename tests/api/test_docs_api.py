"""`/docs` and `/` as every Lambda front door delivers them: the Swagger UI page, its assets intact
(gzip or not, base64 or not), cacheable, within Lambda's response limit, with a strict CSP; and
nothing of it paid for at cold start. tests/api/test_docs_page.py runs the page in a real
browser."""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from cities.http import docs_api
from tests.support.lambda_events import (
    ALB_HOST,
    CUSTOM_DOMAIN,
    FUNCTION_URL_HOST,
    HTTP_API_HOST,
    REST_API_HOST,
    alb_event,
    function_url_event,
    http_api_event,
    rest_api_event,
    to_reply,
)

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024  # bytes of the serialized response payload

# (event builder, extra event arguments, the URL the client sees for the API's root)
FRONT_DOORS = {
    "http-api": (http_api_event, {}, f"https://{HTTP_API_HOST}"),
    "http-api-named-stage": (http_api_event, {"stage": "staging"},
                             f"https://{HTTP_API_HOST}/staging"),
    "rest-api-dev-stage": (rest_api_event, {}, f"https://{REST_API_HOST}/dev"),
    "function-url": (function_url_event, {}, f"https://{FUNCTION_URL_HOST}"),
    "alb": (alb_event, {}, f"https://{ALB_HOST}"),
}


class Door:
    """Sends GETs for client-visible URLs through one front door, keeping the raw result."""

    def __init__(self, handler, make_event, extra: dict, base: str) -> None:
        self.handler, self.make_event, self.extra, self.base = handler, make_event, extra, base

    def get(self, url: str, headers: dict[str, str] | None = None) -> dict:
        """GET `url` (absolute, as the client resolved it) through this door."""
        path = urlsplit(url).path
        prefix = urlsplit(self.base).path
        assert path.startswith(prefix + "/"), f"{url} left the API ({self.base})"
        if self.make_event is rest_api_event or self.extra.get("stage"):
            path = path[len(prefix):]  # the stage travels beside the path in these events
        event = self.make_event("GET", path, None, headers=headers, **self.extra)
        return self.handler(event, None)


@pytest.fixture(params=list(FRONT_DOORS))
def door(request, handler_module) -> Door:
    make_event, extra, base = FRONT_DOORS[request.param]
    return Door(handler_module.api, make_event, extra, base)


def body_bytes(result: dict) -> bytes:
    """The bytes the client receives: each front door decodes a base64 body."""
    body = result.get("body") or ""
    return base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")


def header(result: dict, name: str) -> str | None:
    return to_reply({**result, "body": "", "isBase64Encoded": False}).header(name)


def page_asset_urls(page_url: str, html: str) -> list[str]:
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(not urlsplit(ref).scheme and not ref.startswith("/")
                        for ref in refs if not ref.startswith("data:")), refs
    return [urljoin(page_url, ref) for ref in refs if not ref.startswith("data:")]


def expected_asset(url: str) -> bytes:
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    dist = docs_api._swagger_dist()
    source = dist / name if name.startswith("swagger-ui") else docs_api.OWN_ASSETS / name
    return source.read_bytes()


@pytest.mark.parametrize("encoding", ["gzip, deflate, br", None])
def test_page_and_assets_arrive_intact_through_each_front_door(door: Door, encoding) -> None:
    headers = {"accept": "text/html", "accept-encoding": encoding}
    page_url = f"{door.base}/docs"
    page = door.get(page_url, headers)
    assert page["statusCode"] == 200
    assert header(page, "Content-Type") == "text/html; charset=utf-8"
    assets = page_asset_urls(page_url, body_bytes(page).decode())
    assert {url.rsplit("/", 1)[-1] for url in assets} == {
        "swagger-ui.css", "swagger-ui-bundle.js", "swagger-initializer.js"}
    for url in assets:
        result = door.get(url, {"accept": "*/*", "accept-encoding": encoding})
        assert result["statusCode"] == 200, url
        assert len(json.dumps(result)) < LAMBDA_RESPONSE_LIMIT
        data = body_bytes(result)
        # A REST API passes base64 bodies on only with binary media types set: never gzip there.
        gzipped = encoding is not None and door.make_event is not rest_api_event
        assert header(result, "Content-Encoding") == ("gzip" if gzipped else None)
        assert (gzip.decompress(data) if gzipped else data) == expected_asset(url), url
        kind = "text/css" if url.endswith(".css") else "text/javascript"
        assert header(result, "Content-Type") == f"{kind}; charset=utf-8"
        assert header(result, "Cache-Control") == "public, max-age=31536000, immutable"
        assert header(result, "Vary") == "Accept-Encoding"
        assert header(result, "X-Content-Type-Options") == "nosniff"


def test_the_bundle_travels_compressed(handler_module) -> None:
    door = Door(handler_module.api, http_api_event, {}, f"https://{HTTP_API_HOST}")
    url = f"{door.base}/docs/assets/{docs_api.asset_version()}/swagger-ui-bundle.js"
    plain = door.get(url, {"accept-encoding": None})
    packed = door.get(url, {"accept-encoding": "gzip"})
    assert len(body_bytes(packed)) < len(body_bytes(plain)) / 3
    # Even base64-encoded in the Lambda response, gzip more than halves the payload.
    assert len(json.dumps(packed)) < len(json.dumps(plain)) / 2


def test_the_page_allows_only_its_own_assets(client) -> None:
    reply = client.get("/docs", headers={"accept": "text/html"})
    csp = dict(d.strip().split(" ", 1) for d in reply.header("Content-Security-Policy").split(";"))
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"  # no inline code
    assert csp["connect-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    assert "<script>" not in reply.text and "style=" not in reply.text
    assert reply.header("Cache-Control") == "no-cache"
    etag = reply.header("ETag")
    again = client.get("/docs", headers={"if-none-match": etag})
    assert again.status == 304 and again.text == ""
    assert again.header("Content-Security-Policy") == reply.header("Content-Security-Policy")
    assert client.get("/docs", headers={"if-none-match": '"other"'}).status == 200


def test_api_responses_keep_their_headers_and_no_csp(client) -> None:
    created = client.post("/cities", {"name": "Graz", "state": "Styria"})
    assert created.header("Cache-Control") == "no-store"
    for reply in (created, client.get("/cities"), client.get("/openapi.json")):
        assert reply.header("Content-Security-Policy") is None
        assert reply.header("X-Content-Type-Options") == "nosniff"


@pytest.mark.parametrize("path", [
    "/docs/assets/0.0.0-old/swagger-ui-bundle.js",  # a version this deployment does not serve
    "/docs/assets/{version}/swagger-ui.js",  # in the wheel, not served
    "/docs/assets/{version}/..%2Fflask_swagger_ui.py",
    "/docs/assets/{version}/",
])
def test_unknown_assets_are_json_404s(client, path: str) -> None:
    reply = client.get(path.format(version=docs_api.asset_version()))
    assert reply.status == 404
    assert reply.error_code == "not_found"
    # Made-up names are refused before any cache: they cannot fill a warm container's memory.
    assert docs_api._asset.cache_info().currsize <= len(docs_api.ASSETS)


def test_index_links_the_docs_spec_and_resources_under_each_prefix(door: Door) -> None:
    result = door.get(f"{door.base}/", {"accept": "application/json"})
    reply = to_reply(result)
    assert reply.status == 200
    prefix = urlsplit(door.base).path
    assert reply.json["links"] == {
        "docs": f"{prefix}/docs", "openapi": f"{prefix}/openapi.json",
        "cities": f"{prefix}/cities", "health": f"{prefix}/health",
    }
    for link in reply.json["links"].values():
        assert door.get(urljoin(door.base, link))["statusCode"] == 200, link
    assert reply.header("Vary") == "Accept"


def test_index_sends_browsers_to_the_docs(door: Door) -> None:
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    result = door.get(f"{door.base}/", {"accept": browser})
    assert result["statusCode"] == 302
    assert header(result, "Location") == f"{urlsplit(door.base).path}/docs"


@pytest.mark.parametrize("accept", ["*/*", None, "application/json"])
def test_index_is_json_for_api_clients(client, accept) -> None:
    reply = client.get("/", headers={"accept": accept})
    assert reply.status == 200 and reply.json["links"]["docs"] == "/docs"


def test_custom_domain_base_path(handler_module, monkeypatch) -> None:
    monkeypatch.setenv("API_GATEWAY_BASE_PATH", "v1")
    door = Door(handler_module.api, http_api_event, {"host": CUSTOM_DOMAIN},
                f"https://{CUSTOM_DOMAIN}/v1")
    assert to_reply(door.get(f"{door.base}/")).json["links"]["docs"] == "/v1/docs"
    page = door.get(f"{door.base}/docs")
    for url in page_asset_urls(f"{door.base}/docs", body_bytes(page).decode()):
        assert door.get(url)["statusCode"] == 200, url


COLD_IMPORT = """
import sys
import handler
from cities.http import docs_api
print(sorted(m for m in ("flask_swagger_ui", "gzip") if m in sys.modules))
print(docs_api._swagger_dist.cache_info().currsize + docs_api._asset.cache_info().currsize
      + docs_api.asset_version.cache_info().currsize)
"""


def test_nothing_of_the_docs_is_found_or_read_at_cold_start(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://u@127.0.0.1:9/none",
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", COLD_IMPORT], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"  # neither the wheel's package nor gzip imported
    assert out[1] == "0"  # no file looked up or read
