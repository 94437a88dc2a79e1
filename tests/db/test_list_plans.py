"""Every declared range filter under every declared sort keeps a bounded plan at a realistic size
(200,000 rows). The buffers a plan touches are counted by the server (EXPLAIN ANALYZE, BUFFERS),
not timed.

Under its field's sort the filter is written on the sort's expression, so the index the sort
requires starts its walk at the bound: about a page. Under another sort (id, name) no index can
start there; the planner, taking the bound's rows as spread evenly, walks that sort's order and
checks each row. That sort's required index carries the range's column after its own
(cities.resources.resource.Range), so the check happens in the index and a row the bound excludes
costs no heap read: at most that index once and a page of rows, never the table. Measured with
the bound at the last 1% (issue 25): sort=name 9,069 buffers with a (lower(name), id) index, 195
with (lower(name), id, population); sort=id 3,186 through the primary key, 771 with (id,
population), the size of that index (population grows with id, so every entry before the bound
is read; a top-N sort over the population index would read 48 here, but ~2,700 for a low bound,
which the planner picks when the bound says so).

City's own filters (its list_filter hook) have their plan tests beside their SQL:
tests/db/test_city_filters.py for `q`.
"""

from __future__ import annotations

import json
import re

import psycopg2
import pytest

from cities.db import store
from cities.http.listing import ListQuery
from tests.support.resources.district import DISTRICT
from tests.support.statements import logged_connection

ROWS = 200_000
LIMIT = 100
# A page's rows, each one heap page at worst, plus the descents of the index it walks (a few
# pages each): what a plan that starts at the bound touches. One that filters its way there
# instead reads a large part of the table (issue 25 measured 173,144 buffers at 200k rows).
BUDGET = 4 * (LIMIT + 1) + 50



@pytest.fixture
def districts(database_url: str, sql) -> str:
    """ROWS districts whose population grows with their id (the order and the bound correlate,
    which the planner cannot see)."""
    sql("INSERT INTO region (name, iso_code) VALUES ('R', 'RR')")
    sql("INSERT INTO district (name, region_id, population) SELECT md5(n::text), 1, n "
        "FROM generate_series(1, %s) AS n", (ROWS,))
    sql("VACUUM ANALYZE district")
    return database_url


def page_and_buffers(url: str, query: ListQuery) -> tuple[list[dict], int]:
    conn, captured = logged_connection(url)
    try:
        rows = store.list_page(conn, DISTRICT, query, LIMIT + 1)
        with conn.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + captured[-1])
            plan = cur.fetchone()[0]
    finally:
        conn.close()
    top = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]
    return rows, top["Shared Hit Blocks"] + top["Shared Read Blocks"]


def index_pages(url: str, columns: tuple[str, ...]) -> int:
    """Pages of the largest district index leading with `columns` (as PostgreSQL prints them):
    what a walk of that order reads at most, checking a bound in the index."""
    wanted = ", ".join(columns)
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT indexdef, pg_relation_size(c.oid) / current_setting('block_size')::int"
                " FROM pg_indexes i JOIN pg_class c ON c.relname = i.indexname"
                " WHERE i.tablename = 'district'")
            return max(pages for d, pages in cur.fetchall()
                       if re.search(rf"btree \({re.escape(wanted)}(, |\))", d))
    finally:
        conn.close()


def test_every_range_filter_under_every_sort_reads_at_most_its_index_and_a_page(districts):
    for spec, on in DISTRICT.ranges:
        bound = ROWS - ROWS // 100  # the last 1%: far from where the ascending walk starts
        for sort in DISTRICT.sorts:
            order = DISTRICT.sort_keys[sort.field]
            # Its own sort starts at the bound; another walks its index, checking the bound there.
            budget = BUDGET if sort is on else BUDGET + index_pages(districts, order.index_columns)
            for name in (sort.field, f"-{sort.field}"):
                rows, buffers = page_and_buffers(
                    districts, ListQuery(sort=name, filters={spec.name: bound}))
                assert len(rows) == LIMIT + 1
                assert all(row[spec.field] >= bound for row in rows)
                assert buffers <= budget, f"sort={name} {spec.name}={bound}: {buffers} buffers"
