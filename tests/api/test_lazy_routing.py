"""URL builders compiled lazily (cities.http.routing) still build the URLs clients see."""

from __future__ import annotations

from cities.http.routing import LazyBuildRule
from tests.support.lambda_events import HTTP_API_HOST, Client


def test_app_uses_lazy_rules(app) -> None:
    assert all(isinstance(rule, LazyBuildRule) for rule in app.url_map.iter_rules())


def test_location_and_link_are_built(client: Client) -> None:
    first = client.post("/cities", {"name": "Springfield", "state": "Illinois"})
    second = client.post("/cities", {"name": "Shelbyville", "state": "Illinois"})
    assert first.header("Location") == f"https://{HTTP_API_HOST}/cities/{first.json['id']}"
    assert second.header("Location") == f"https://{HTTP_API_HOST}/cities/{second.json['id']}"
    page = client.get("/cities", query={"limit": "1", "sort": "name"})
    link = page.header("Link")
    assert link.startswith(f"<https://{HTTP_API_HOST}/cities?limit=1&sort=name&cursor=")
    assert client.follow(link[1 : link.index(">")]).json == [first.json]
