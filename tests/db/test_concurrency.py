"""Mixed concurrent traffic through the Lambda handler: nothing acknowledged is lost or altered,
ids are never reused, paging never repeats or skips a row, and connections stay bounded."""

from __future__ import annotations

import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from tests.conftest import open_connections

WORKERS = 8
OPS_PER_WORKER = 40


def sessions_opened(sql, at_least: int = 0) -> int:
    """Connections ever made to this database, as the server counts them (pg_stat_database).

    A backend reports its session when it exits, so wait (briefly) for `at_least` to show."""
    deadline = time.monotonic() + 5
    while True:
        rows = sql("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        if rows[0][0] >= at_least or time.monotonic() > deadline:
            return rows[0][0]
        time.sleep(0.05)


def worker(client, number: int) -> tuple[dict[int, dict | None], list[int]]:
    """Random creates, updates, deletes and lists on this worker's own cities, plus contested
    creates of a shared pair. Returns the last acknowledged state of each city it created."""
    rng = random.Random(number)
    acknowledged: dict[int, dict | None] = {}
    created: list[int] = []
    for step in range(OPS_PER_WORKER):
        live = [i for i, c in acknowledged.items() if c is not None]
        op = rng.choice(["create", "create", "patch", "put", "delete", "list", "contested"])
        if op == "create" or (not live and op in ("patch", "put", "delete")):
            reply = client.post("/cities", {"name": f"W{number} C{step}", "state": f"S{number}"})
            assert reply.status == 201, reply
            acknowledged[reply.json["id"]] = reply.json
            created.append(reply.json["id"])
        elif op == "patch":
            city_id = rng.choice(live)
            reply = client.patch(f"/cities/{city_id}", {"name": f"W{number} P{step}"})
            assert reply.status == 200, reply
            acknowledged[city_id] = reply.json
        elif op == "put":
            city_id = rng.choice(live)
            reply = client.put(f"/cities/{city_id}",
                               {"name": f"W{number} U{step}", "state": f"T{number}"})
            assert reply.status == 200, reply
            acknowledged[city_id] = reply.json
        elif op == "delete":
            city_id = rng.choice(live)
            assert client.delete(f"/cities/{city_id}").status == 200
            acknowledged[city_id] = None
        elif op == "list":
            assert client.get("/cities", query={"state": f"s{number}", "limit": "5"}).status == 200
        else:
            reply = client.post("/cities", {"name": "Contested", "state": f"Round {step}"})
            assert reply.status in (201, 409), reply
            if reply.status == 201:
                created.append(reply.json["id"])
    return acknowledged, created


def test_mixed_concurrent_traffic_loses_nothing(client, sql, database_url):
    before = sessions_opened(sql)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = list(pool.map(lambda n: worker(client, n), range(WORKERS)))

    # Every request above needed data: exactly one connection each, none shared or extra.
    requests = WORKERS * OPS_PER_WORKER
    assert sessions_opened(sql, at_least=before + requests) - before == requests
    assert open_connections(database_url) == 0

    all_created = [i for _, created in results for i in created]
    assert len(all_created) == len(set(all_created)), "an id was handed out twice"

    stored = {
        row[0]: row for row in sql("SELECT id, name, state, created_at, updated_at FROM city")
    }
    for acknowledged, _ in results:
        for city_id, city in acknowledged.items():
            if city is None:
                assert city_id not in stored, f"deleted city {city_id} is back"
                continue
            row = client.get(f"/cities/{city_id}").json
            assert row == city, "the database differs from what was acknowledged"
    contested = sql("SELECT state, count(*) FROM city WHERE name = 'Contested' GROUP BY state")
    assert all(count == 1 for _, count in contested)


def test_paging_while_others_insert_sees_every_existing_row_once(client, sql):
    sql("INSERT INTO city (name, state) "
        "SELECT 'Existing ' || n, 'E' FROM generate_series(1, 120) AS n")
    existing = {row[0] for row in sql("SELECT id FROM city")}
    stop = threading.Event()

    def insert_forever(number: int) -> int:
        count = 0
        while not stop.is_set() and count < 200:
            name = f"{'AAA' if count % 2 else 'zzz'} new {number}-{count}"
            assert client.post("/cities", {"name": name, "state": "E"}).status == 201
            count += 1
        return count

    def walk(sort: str) -> list[int]:
        seen, reply = [], client.get("/cities", query={"limit": "7", "sort": sort})
        while True:
            assert reply.status == 200
            seen += [c["id"] for c in reply.json]
            link = reply.header("Link")
            if link is None:
                return seen
            url = re.fullmatch(r'<([^>]+)>; rel="next"', link)[1]
            parts = urlsplit(url)
            reply = client.get(f"{parts.path}?{parts.query}")

    with ThreadPoolExecutor(max_workers=6) as pool:
        writers = [pool.submit(insert_forever, n) for n in range(3)]
        walks = {sort: pool.submit(walk, sort) for sort in ("id", "-id", "name", "-name")}
        seen = {sort: future.result() for sort, future in walks.items()}
        stop.set()
        inserted = sum(w.result() for w in writers)

    assert inserted > 0
    for sort, ids in seen.items():
        assert len(ids) == len(set(ids)), f"sort={sort} repeated a row"
        assert existing <= set(ids), f"sort={sort} skipped an existing row"
