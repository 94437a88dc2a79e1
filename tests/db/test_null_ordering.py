"""A sort over a nullable field (Sort(..., nulls="first" | "last")), walked page by page on a real
PostgreSQL: every row exactly once, in the declared order, on both sides of the NULLs, in both
directions, with and without filters; and each page is read as ranges of the sort's index that
start at the cursor, never a walk that filters its way there.

The table is the test-only `region` (tests/support/resources/create_tables.sql has both indexes:
(population, id) for "last", (population NULLS FIRST, id) for "first").
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from cities.db import store
from cities.http.listing import ListQuery, decode_cursor
from cities.resources.resource import Filter, Range, Resource, Sort
from cities.resources.validation import WHOLE_NUMBER_SCHEMA, whole_number_text
from tests.support.resources.region import REGION
from tests.support.statements import logged_connection

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def initial(text: str) -> tuple[str | None, str | None]:
    return (text.lower(), None) if len(text) == 1 and text.isalpha() else (None, "one letter")


def by_initial(conn: Any, query: ListQuery) -> tuple[list[str], list[Any], tuple[str, ...]]:
    """A hook filter that keeps NULLs (unlike a range): the walk must still cross them."""
    if "initial" not in query.filters:
        return [], [], ()
    return ["lower(name) LIKE %s"], [query.filters["initial"] + "%"], ()


def regions(nulls: str) -> Resource:
    return Resource(
        singular="region", plural="regions", fields=REGION.fields,
        sorts=(Sort("population", nulls=nulls),),
        filters=(
            Range("min_population", "population", ">=", whole_number_text, WHOLE_NUMBER_SCHEMA,
                  "at least"),
            Filter("initial", initial, {"type": "string"}, "names starting with this letter"),
        ),
        list_filter=by_initial,
    )


@pytest.fixture
def rows(sql) -> list[dict]:
    """60 regions: a third with no population, values with ties, names in two initials, and
    ids that do not follow the populations."""
    made = []
    for n in range(60):
        population = None if n % 3 == 0 else (n * 7) % 10
        name = f"{'ab'[n % 2]}{n:02d}"
        sql("INSERT INTO region (name, iso_code, population) VALUES (%s, %s, %s)",
            (name, LETTERS[n // 26] + LETTERS[n % 26], population))
        made.append({"name": name, "population": population})
    for id_, row in enumerate(made, start=1):
        row["id"] = id_
    return made


def expected(rows: list[dict], nulls: str, descending: bool, filters: dict) -> list[int]:
    kept = [r for r in rows
            if r["population"] is not None or "min_population" not in filters]
    kept = [r for r in kept if r["population"] is None
            or r["population"] >= filters.get("min_population", 0)]
    kept = [r for r in kept if r["name"].startswith(filters.get("initial", ""))]
    rank = 1 if nulls == "last" else -1
    ordered = sorted(kept, key=lambda r: (rank, 0, r["id"]) if r["population"] is None
                     else (0, r["population"], r["id"]))
    return [r["id"] for r in (reversed(ordered) if descending else ordered)]


FILTERS = [{}, {"initial": "a"}, {"min_population": "4"}, {"initial": "b", "min_population": "0"}]


@pytest.mark.parametrize("nulls", ["last", "first"])
@pytest.mark.parametrize("direction", ["", "-"])
def test_every_page_walk_visits_each_row_once_in_the_declared_order(
        client_for, rows, nulls, direction):
    client = client_for(RESOURCES=(regions(nulls),))
    for filters in FILTERS:
        want = expected(rows, nulls, bool(direction),
                        {k: (int(v) if k == "min_population" else v) for k, v in filters.items()})
        for limit in (1, 4, 7):
            seen, query = [], {**filters, "sort": f"{direction}population", "limit": str(limit)}
            reply = client.get("/regions", query=query)
            while True:
                assert reply.status == 200, reply
                seen += [item["id"] for item in reply.json]
                link = reply.header("Link")
                if link is None:
                    break
                reply = client.get(re.fullmatch(r'<([^>]+)>; rel="next"', link)[1])
            assert seen == want, (nulls, direction, filters, limit)


def test_the_descending_sort_is_the_ascending_one_reversed(client_for, rows):
    """NULLs last under `population` are first under `-population`: one index serves both."""
    client = client_for(RESOURCES=(regions("last"),))
    up = [r["id"] for r in client.get("/regions?sort=population&limit=1000").json]
    down = [r["id"] for r in client.get("/regions?sort=-population&limit=1000").json]
    assert down == up[::-1]
    populations = [r["population"] for r in client.get("/regions?sort=population").json]
    assert populations[-1] is None and populations[0] is not None


def test_a_cursor_at_a_null_names_it_and_any_other_null_is_refused(client_for, rows):
    resource = regions("last")
    client = client_for(RESOURCES=(resource,))
    page = client.get("/regions?sort=population&limit=45")  # 40 values, then NULLs
    cursor = re.search(r"cursor=([^&>]+)", page.header("Link"))[1]
    key = decode_cursor(resource, cursor, ListQuery(limit=45, sort="population"))
    assert key[0] is None
    # A NULL where the field is not nullable (name's sort) is not a cursor this API issues.
    named = Resource(singular="region", plural="regions", fields=REGION.fields,
                     sorts=(Sort("name", "lower({})"),))
    from cities.http.listing import encode_cursor

    forged = encode_cursor(named, ListQuery(sort="name"), [None, 3])
    reply = client_for(RESOURCES=(named,)).get("/regions", query={"sort": "name",
                                                                  "cursor": forged})
    assert (reply.status, reply.detail_fields) == (422, ["cursor"])



def scans(plan: dict) -> list[dict]:
    found = [plan] if "Scan" in plan["Node Type"] else []
    for child in plan.get("Plans", []):
        found += scans(child)
    return found


@pytest.mark.parametrize("nulls", ["last", "first"])
@pytest.mark.parametrize("descending", [False, True])
def test_each_page_reads_ranges_of_the_sorts_index_from_the_cursor_on(
        database_url, rows, nulls, descending):
    """Sequential scans off, so that the 60 rows plan as a large table would: each scan is of
    the declared index and returns no more than a page, whatever side of the NULLs the cursor
    is on (an OR of the two ranges would filter from the start of the index)."""
    resource, limit = regions(nulls), 5
    index = "region_population_order" if nulls == "last" else "region_population_nulls_first_order"
    sort = f"{'-' if descending else ''}population"
    ids = expected(rows, nulls, descending, {})
    by_id = {r["id"]: r for r in rows}
    conn, captured = logged_connection(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SET enable_seqscan = off")
        for position in range(0, len(ids) - 1, 3):
            last = by_id[ids[position]]
            query = ListQuery(limit=limit, sort=sort, after=(last["population"], last["id"]))
            page = store.list_page(conn, resource, query, limit)
            assert [r["id"] for r in page] == ids[position + 1:position + 1 + limit]
            with conn.cursor() as cur:
                cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + captured[-1])
                plan = cur.fetchone()[0]
            top = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]
            for scan in scans(top):
                assert scan.get("Index Name") == index, scan
                assert scan["Actual Rows"] <= limit and not scan.get("Rows Removed by Filter")
    finally:
        conn.close()
