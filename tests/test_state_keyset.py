"""Paging a state filter by id walks the (lower(state), id) index: still every row exactly once."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.lambda_events import Client


@pytest.mark.parametrize("sort", ["id", "-id"])
def test_walking_a_state_visits_each_row_once_in_order(client: Client, sql, sort: str) -> None:
    sql(
        "INSERT INTO city (name, state) SELECT 'Town ' || i, "
        "CASE WHEN i % 3 = 0 THEN 'Texas' WHEN i % 3 = 1 THEN 'TEXAS' ELSE 'Ohio' END "
        "FROM generate_series(1, 40) i"
    )
    rows = sql("SELECT id FROM city WHERE lower(state) = 'texas' ORDER BY id")
    expected = [row[0] for row in rows]
    assert len(expected) == 27
    if sort == "-id":
        expected.reverse()
    seen: list[int] = []
    reply = client.get("/cities", query={"state": "texas", "limit": "4", "sort": sort})
    while True:
        assert reply.status == 200
        seen += [city["id"] for city in reply.json]
        link = reply.header("Link")
        if not link:
            break
        url = urlsplit(link[1 : link.index(">")])
        reply = client.get(f"{url.path}?{url.query}")
    assert seen == expected
