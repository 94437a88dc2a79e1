"""Contract checks of what docs/extending.md's recipes add, run inside the scratch copy they were
applied to (tests/db/test_recipes.py): `python -m tests.support.recipe_checks URL SECTION...`.

It imports that copy's `cities` (its own process: the suite's `cities` is the unchanged one),
builds the app as `create_app` serves it by default, and talks to it through Flask's test
client. Each section's checks are the API a newcomer expects after following that recipe.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import psycopg2

from cities import create_app


class Api:
    def __init__(self, url: str) -> None:
        self.client = create_app({"DATABASE_URL": url}).test_client()

    def call(self, method: str, path: str, body: Any = None, status: int | None = None) -> Any:
        reply = self.client.open(path, method=method, json=body)
        if status is not None:
            assert reply.status_code == status, (method, path, body, reply.status_code,
                                                 reply.get_data(as_text=True))
        return reply

    def walk(self, path: str) -> list[dict]:
        """Every item of a list, following its Link header page by page."""
        items = []
        while path:
            reply = self.call("GET", path, status=200)
            items += reply.get_json()
            link = reply.headers.get("Link")
            path = link and re.sub(r"^https?://[^/]+", "", re.fullmatch(r"<([^>]+)>.*", link)[1])
        return items


def detail_fields(reply: Any) -> list[str]:
    return sorted(d["field"] for d in reply.get_json()["error"]["details"])


def nulls_last(items: list[dict], field: str) -> list[int]:
    ordered = sorted(items, key=lambda i: (i[field] is None, i[field] or 0, i["id"]))
    return [i["id"] for i in ordered]


def missing_indexes(url: str) -> list[str]:
    """The declared resources' list orders (and references) no index leads with, as printed."""
    from cities.resources.city import CITY

    resources = [CITY, *(r.target for r in CITY.references)]
    conn = psycopg2.connect(url)
    missing = []
    try:
        with conn.cursor() as cur:
            for resource in resources:
                cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s",
                            (resource.table,))
                have = [re.search(r"USING btree \((.*)\)$", d)[1]
                        for (d,) in cur.fetchall() if "USING btree" in d]
                for columns in resource.required_indexes():
                    wanted = ", ".join(columns)
                    if not any(h == wanted or h.startswith(wanted + ", ") for h in have):
                        missing.append(f"{resource.table} ({wanted})")
    finally:
        conn.close()
    return missing


def adding_a_field(api: Api, url: str) -> None:
    made = [api.call("POST", "/cities", {"name": f"Town {n}", "state": "S", **extra}, 201)
            .get_json() for n, extra in enumerate(
                [{"population": 5}, {}, {"population": None}, {"population": 2},
                 {"population": 5}, {}])]
    assert [c["population"] for c in made] == [5, None, None, 2, 5, None]
    reply = api.call("POST", "/cities", {"name": "Bad", "state": "S", "population": -1}, 422)
    assert detail_fields(reply) == ["population"]
    patched = api.call("PATCH", f"/cities/{made[0]['id']}", {"population": None}, 200).get_json()
    assert patched["population"] is None
    api.call("PATCH", f"/cities/{made[0]['id']}", {"population": 5}, 200)
    up = api.walk("/cities?sort=population&limit=2")
    assert [c["id"] for c in up] == nulls_last(made, "population")
    down = api.walk("/cities?sort=-population&limit=2")
    assert [c["id"] for c in down] == nulls_last(made, "population")[::-1]
    behind_state = api.walk("/cities?sort=population&limit=2&state=s")
    assert [c["id"] for c in behind_state] == nulls_last(made, "population")
    spec = api.call("GET", "/openapi.json", status=200).get_json()
    assert "population" in spec["components"]["schemas"]["City"]["properties"]
    assert not (missing := missing_indexes(url)), f"indexes missing: {missing}"
    for city in made:
        api.call("DELETE", f"/cities/{city['id']}", status=200)


def adding_a_resource(api: Api, url: str) -> None:
    bodies = [{"name": "France", "iso_code": "fr", "population": 68_000_000},
              {"name": "Japan", "iso_code": "JP", "population": 124_000_000},
              {"name": "Nauru", "iso_code": "NR", "population": 12_000},
              {"name": "Atlantis", "iso_code": "AT"}]
    made = [api.call("POST", "/countries", body, 201).get_json() for body in bodies]
    assert made[0]["iso_code"] == "FR"
    assert api.call("GET", f"/countries/{made[0]['id']}", status=200).get_json() == made[0]
    assert detail_fields(api.call("POST", "/countries", {"name": "FRANCE", "iso_code": "XX"},
                                  409)) == ["name"]
    assert detail_fields(api.call("POST", "/countries", {"name": "X", "iso_code": "FRA",
                                                         "capital": "Paris"}, 422)) == [
        "capital", "iso_code"]
    api.call("GET", "/countries/999999", status=404)
    by_name = [c["name"] for c in api.walk("/countries?sort=name&limit=1")]
    assert by_name == sorted(by_name, key=str.lower)
    assert [c["id"] for c in api.walk("/countries?sort=-population&limit=1")] == (
        nulls_last(made, "population")[::-1])
    # the filter (a Range): under its own sort and another, with cursors
    for sort in ("population", "-population", "name", "id"):
        kept = api.walk(f"/countries?min_population=1000000&sort={sort}&limit=1")
        assert {c["name"] for c in kept} == {"France", "Japan"}, sort
    assert detail_fields(api.call("GET", "/countries?min_population=-3", status=422)) == [
        "min_population"]
    spec = api.call("GET", "/openapi.json", status=200).get_json()
    assert {"/countries", "/countries/{id}"} <= set(spec["paths"])
    assert not (missing := missing_indexes(url)), f"indexes missing: {missing}"
    for country in made:
        api.call("DELETE", f"/countries/{country['id']}", status=200)


def relations(api: Api, url: str) -> None:
    country = api.call("POST", "/countries", {"name": "Italy", "iso_code": "IT"}, 201).get_json()
    unknown = api.call("POST", "/cities", {"name": "Rome", "state": "Lazio",
                                           "country_id": 999999}, 422)
    assert detail_fields(unknown) == ["country_id"]
    city = api.call("POST", "/cities", {"name": "Rome", "state": "Lazio",
                                        "country_id": country["id"]}, 201).get_json()
    assert city["country_id"] == country["id"]
    refused = api.call("DELETE", f"/countries/{country['id']}", status=409)
    assert "cities" in refused.get_json()["error"]["message"]
    spec = api.call("GET", "/openapi.json", status=200).get_json()
    assert "409" in spec["paths"]["/countries/{id}"]["delete"]["responses"]
    assert not (missing := missing_indexes(url)), f"indexes missing: {missing}"
    api.call("DELETE", f"/cities/{city['id']}", status=200)
    api.call("DELETE", f"/countries/{country['id']}", status=200)


CHECKS = {"Adding a field": adding_a_field, "Adding a resource": adding_a_resource,
          "Relations": relations}


def main(url: str, sections: list[str]) -> None:
    api = Api(url)
    for section in sections:
        CHECKS[section](api, url)
        print(f"{section}: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
