"""How caches may keep each response (RFC 9111), route by route, as the API's spec.

Without `Cache-Control` a shared cache picks its own lifetime and serves old versions after a
write (tests/api/test_shared_cache.py shows it through a real Varnish). So every read says
`no-cache`:
a cache may store it but must ask the API before each reuse, which an item's `ETag` makes a 304
without body; a list has no ETag, so a cache fetches it whole. `/health`, writes and errors say
`no-store`. Only `/` (by `Accept`) and the docs' assets (by `Accept-Encoding`) vary by a request
header: reads ignore `Authorization`, and the host in generated URLs is in every cache key anyway.
"""

from __future__ import annotations

from cities.http import docs_api

CITY = {"name": "Shelbyville", "state": "Illinois"}
REVALIDATE = "no-cache"
NO_STORE = "no-store"
IMMUTABLE = "public, max-age=31536000, immutable"

# method, target, body, request headers -> status, Cache-Control, Vary, carries an ETag
ROUTES = [
    ("GET", "/cities", None, {}, 200, REVALIDATE, None, False),
    ("HEAD", "/cities", None, {}, 200, REVALIDATE, None, False),
    ("GET", "/cities/{id}", None, {}, 200, REVALIDATE, None, True),
    ("HEAD", "/cities/{id}", None, {}, 200, REVALIDATE, None, True),
    # A 304 repeats the 200's cache headers: a cache updates its copy from them (RFC 9111 4.3.4).
    ("GET", "/cities/{id}", None, {"If-None-Match": "{etag}"}, 304, REVALIDATE, None, True),
    # A read with a key is a read: the same answer for every caller, no Vary on Authorization.
    ("GET", "/cities/{id}", None, {"Authorization": "Bearer any"}, 200, REVALIDATE, None, True),
    ("GET", "/openapi.json", None, {}, 200, REVALIDATE, None, False),
    ("GET", "/", None, {}, 200, REVALIDATE, "Accept", False),
    ("GET", "/", None, {"Accept": "text/html"}, 302, REVALIDATE, "Accept", False),
    ("GET", "/docs", None, {}, 200, REVALIDATE, None, True),
    ("GET", "/docs/assets/{version}/swagger-ui.css", None, {}, 200, IMMUTABLE, "Accept-Encoding",
     False),
    # A stored "ok" would hide an outage: not even kept for revalidation.
    ("GET", "/health", None, {}, 200, NO_STORE, None, False),
    # Writes and errors: a cached 404 or 412 would outlive its cause.
    ("POST", "/cities", CITY, {}, 201, NO_STORE, None, True),
    ("PATCH", "/cities/{id}", {"state": "IL"}, {}, 200, NO_STORE, None, True),
    ("GET", "/cities/999999", None, {}, 404, NO_STORE, None, False),
    ("GET", "/cities?limit=0", None, {}, 422, NO_STORE, None, False),
    ("GET", "/cities/{id}", None, {"If-Match": '"00000000000000000000"'}, 412, NO_STORE, None,
     False),
    ("DELETE", "/cities/{id}", None, {}, 200, NO_STORE, None, True),
    ("GET", "/cities/{id}", None, {}, 404, NO_STORE, None, False),  # deleted just above
]


def shared(routes: list[tuple], policy: str) -> list[tuple]:
    """ROUTES with the successful reads of an item or a list (200, 304; GET and HEAD) under
    `policy`: what SHARED_CACHE_MAX_AGE changes, and nothing else."""
    return [
        (*route[:5], policy, *route[6:])
        if route[0] in ("GET", "HEAD") and route[1].startswith("/cities") and route[4] < 400
        else route
        for route in routes
    ]


def test_every_route_says_how_caches_may_keep_it(client, city):
    assert_routes(client, city, ROUTES)


def test_shared_caching_opts_in_items_and_lists_only(client_for):
    """SHARED_CACHE_MAX_AGE=N: reads of items and lists may be kept N s by any cache, and served
    N s more while it refetches; errors, writes, /health and the documents stay as they were."""
    client = client_for(SHARED_CACHE_MAX_AGE=2)
    city = client.post("/cities", {"name": "Lyon", "state": "ARA"}).json
    routes = shared(ROUTES, "public, max-age=2, stale-while-revalidate=2")
    assert sum(route != same for route, same in zip(routes, ROUTES, strict=True)) == 6
    assert_routes(client, city, routes)


def test_shared_caching_out_of_range_is_off(client_for, monkeypatch, caplog):
    """A value out of range is logged, naming it, and no read is shared: never a guess."""
    for n, raw in enumerate(("-1", "3601", "2s", "on")):
        monkeypatch.setenv("SHARED_CACHE_MAX_AGE", raw)  # read from the environment, as Lambda
        caplog.clear()
        client = client_for()
        assert [r.getMessage() for r in caplog.records if "SHARED_CACHE" in r.getMessage()] == [
            f"SHARED_CACHE_MAX_AGE={raw!r} is not valid: expected a whole number of seconds "
            "from 0 to 3600; using the default 0"]
        assert_routes(client, client.post("/cities", {"name": f"Lyon {n}", "state": "ARA"}).json,
                      ROUTES)
        for row in client.get("/cities").json:  # the table's own POST: the next one repeats it
            assert client.delete(f"/cities/{row['id']}").status == 200


def assert_routes(client, city, routes: list[tuple]) -> None:
    fill = {
        "id": city["id"],
        "etag": client.get(f"/cities/{city['id']}").header("ETag"),
        "version": docs_api.asset_version(),
    }
    wrong = []
    for method, target, body, headers, status, cache_control, vary, has_etag in routes:
        url = target.format(**fill)
        reply = client.request(
            method, url, body, headers={k: v.format(**fill) for k, v in headers.items()}
        )
        got = (reply.status, reply.header("Cache-Control"), reply.header("Vary"),
               reply.header("ETag") is not None)
        if got != (status, cache_control, vary, has_etag):
            wrong.append(f"{method} {url} {headers}: {got}")
    assert wrong == []

