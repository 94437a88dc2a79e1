"""Per request: GET, POST, PUT and a list through serverless-wsgi, against floors doing the same.

The floors (psycopg2 alone, a one-route Flask app, a FastAPI peer) run in the same interleaved
rounds, so the ratios say what the project's own code adds to a request, and what reuse saves.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from typing import Any

from bench.common import expect, interleaved, log, one_route_app, target

SEED_ROWS = 1000


def seed(url: str) -> None:
    """The rows every `GET /cities/{id}` here reads; the memory section reads the same database."""
    import psycopg2

    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO city (name, state) SELECT 'Seed ' || i, 'Bench' "
            "FROM generate_series(1, %s) i",
            (SEED_ROWS,),
        )
    conn.close()


def bench_request(url: str, rounds: int) -> dict[str, Any]:
    """Every request kind of ours, the peer's and the floors', `rounds` interleaved rounds."""
    import psycopg2

    from cities.resources.city import CITY

    SELECT_BY_ID = CITY.select_by_id  # GET /cities/{id}'s query, run by every floor
    from tests.support.lambda_events import http_api_event

    log(f"per request: {rounds} interleaved rounds, TCP + SCRAM to a local PostgreSQL")
    os.environ["DATABASE_URL"] = url
    os.environ["DB_CONNECTION_REUSE"] = "0"
    import handler
    from bench import fastapi_peer
    from cities import create_app
    from cities.db.connection import kept_connection
    from cities.http import lambda_entry

    reuse_app = create_app({"DB_CONNECTION_REUSE": True})

    def reuse_api(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return lambda_entry.serve(reuse_app, event, context)

    # The same warm GET with the per-request EMF record on (as on Lambda, serverless.yml), printed
    # to /dev/null: its difference to `GET cities reuse` is what the metrics cost a request.
    metrics_app = create_app({"DB_CONNECTION_REUSE": True, "METRICS": True})
    devnull = open(os.devnull, "w")  # noqa: SIM115 - closed after the run

    def metrics_api(event: dict[str, Any], context: Any) -> dict[str, Any]:
        stdout, sys.stdout = sys.stdout, devnull
        try:
            return lambda_entry.serve(metrics_app, event, context)
        finally:
            sys.stdout = stdout

    apis = {"cities": handler.api, "cities reuse": reuse_api, "FastAPI peer": fastapi_peer.api}
    rng = random.Random(2)
    total = rounds + 10
    ids = [rng.randint(1, SEED_ROWS) for _ in range(total)]
    events: dict[str, list[dict[str, Any]]] = {}
    for label in apis:
        tag = label.replace(" ", "-")
        events[f"GET {label}"] = [http_api_event("GET", f"/cities/{i}") for i in ids]
        events[f"POST {label}"] = [
            http_api_event("POST", "/cities", {"name": f"Post {tag} {r}", "state": "Bench"})
            for r in range(total)
        ]
        events[f"PUT {label}"] = [
            http_api_event("PUT", f"/cities/{ids[r]}", {"name": f"Put {tag} {r}", "state": "B"})
            for r in range(total)
        ]
        events[f"LIST {label}"] = [http_api_event("GET", "/cities", query={"limit": "100"})]

    def call(label: str, kind: str, status: int) -> Callable[[int], Any]:
        api, evs = apis[label], events[f"{kind} {label}"]
        return lambda r: expect(api(evs[r % len(evs)], None), status)

    def floor(r: int) -> None:
        c = psycopg2.connect(url, connect_timeout=5, application_name="floor")
        with c.cursor() as cur:
            cur.execute(SELECT_BY_ID, (ids[r],))
            cur.fetchone()
        c.close()

    # The framework's own share: a one-route Flask app behind serverless-wsgi doing the floor's
    # work (connect, the SELECT, close) and answering JSON, with nothing of the project's.
    def read_connecting(city_id: int) -> Any:
        c = psycopg2.connect(url, connect_timeout=5, application_name="one-route")
        with c.cursor() as cur:
            cur.execute(SELECT_BY_ID, (city_id,))
            row = cur.fetchone()
        c.close()
        return row

    one_route = one_route_app("one_route", read_connecting)
    one_route_events = events["GET cities"]

    def one_route_call(r: int) -> None:
        expect(one_route(one_route_events[r]), 200)

    warm = psycopg2.connect(url, application_name="floor-warm")

    def warm_floor(r: int) -> None:
        with warm.cursor() as cur:
            cur.execute(SELECT_BY_ID, (ids[r],))
            cur.fetchone()
        warm.rollback()

    contenders: dict[str, Callable[[int], Any]] = {
        "floor: connect + SELECT + close": floor,
        "warm floor: SELECT on an open connection": warm_floor,
        "GET one-route Flask app, same work": one_route_call,
    }
    for kind, status in (("GET", 200), ("POST", 201), ("PUT", 200), ("LIST", 200)):
        for label in apis:
            contenders[f"{kind} {label}"] = call(label, kind, status)
    reuse_gets = events["GET cities reuse"]
    contenders["GET cities reuse, METRICS on"] = lambda r: expect(
        metrics_api(reuse_gets[r % len(reuse_gets)], None), 200)
    results = interleaved(contenders, rounds, warmup=10)
    warm.close()
    devnull.close()
    kept_connection(reuse_app).drop()
    kept_connection(metrics_app).drop()

    f = results["floor: connect + SELECT + close"]["median"]
    out: dict[str, Any] = {"timings": results}
    out["targets"] = {
        "GET /cities/{id} vs floor (<= 1.10x)": target(results["GET cities"]["median"] / f, 1.10),
        "warm GET with DB_CONNECTION_REUSE vs floor (<= 0.3x)": target(
            results["GET cities reuse"]["median"] / f, 0.3
        ),
    }
    out["ratios"] = {
        name: round(r["median"] / f, 3) for name, r in results.items()
    }
    return out
