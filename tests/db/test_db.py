"""The connection's life: at most one per request, opened only when needed, always closed;
and what clients see when the database is missing, unreachable or unmigrated."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest

from cities.db import store
from tests.conftest import open_connections

UNREACHABLE = "postgresql://secret_user:hunter2@127.0.0.1:9/nowhere?sslmode=disable"
NO_DATA_NEEDED = [
    ("GET", "/openapi.json", None, 200),
    ("GET", "/towns", None, 404),
    ("DELETE", "/cities", None, 405),
    ("GET", "/cities/abc", None, 404),
    ("POST", "/cities", "{", 400),
    ("POST", "/cities", {"name": ""}, 422),
    ("GET", "/cities?limit=0", None, 422),
    ("GET", "/cities?cursor=bogus", None, 422),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), NO_DATA_NEEDED)
def test_requests_that_need_no_data_open_no_connection(client_for, method, path, body, status):
    client = client_for(DATABASE_URL=UNREACHABLE)
    assert client.request(method, path, body).status == status


def test_unauthorized_writes_open_no_connection(client_for):
    client = client_for(DATABASE_URL=UNREACHABLE, API_KEYS=("k",))
    assert client.post("/cities", {"name": "A", "state": "B"}).status == 401


@pytest.mark.parametrize("path", ["/cities", "/cities/1", "/health"])
def test_unreachable_database_is_503_with_retry_after_and_no_secrets(client_for, path, caplog):
    client = client_for(DATABASE_URL=UNREACHABLE, DB_CONNECT_TIMEOUT=1)
    reply = client.get(path)
    assert reply.status == 503
    assert reply.error_code == "service_unavailable"
    assert reply.header("Retry-After") == "5"
    for secret in ("secret_user", "hunter2", "127.0.0.1", "nowhere", "5432", ":9"):
        assert secret not in reply.text
    assert "cannot connect to the database" in caplog.text
    assert "hunter2" not in caplog.text


def test_missing_database_url_is_logged_at_startup_and_503_per_request(client_for, caplog):
    caplog.set_level(logging.INFO, logger="cities")
    client = client_for(DATABASE_URL=None)
    assert "DATABASE_URL is not set" in caplog.text
    caplog.clear()
    reply = client.get("/cities")
    assert reply.status == 503
    assert reply.error_code == "service_unavailable"
    assert "not configured" in reply.json["error"]["message"]
    assert "DATABASE_URL is not set" in caplog.text
    assert client.get("/openapi.json").status == 200


def test_unmigrated_database_is_503_telling_to_run_migrate(client_for, empty_database_url):
    client = client_for(DATABASE_URL=empty_database_url)
    for reply in (client.get("/cities"), client.post("/cities", {"name": "A", "state": "B"}),
                  client.get("/health")):
        assert reply.status == 503
        assert "run the migrate function" in reply.json["error"]["message"]
    assert open_connections(empty_database_url) == 0


def test_connections_are_closed_after_every_kind_of_request(client, database_url):
    created = client.post("/cities", {"name": "Lyon", "state": "ARA"})
    city_id = created.json["id"]
    replies = [
        created,
        client.get("/cities"),
        client.get(f"/cities/{city_id}"),
        client.get(f"/cities/{city_id + 1}"),  # 404 after a query
        client.post("/cities", {"name": "LYON", "state": "ara"}),  # 409 after a failed insert
        client.patch(f"/cities/{city_id}", {"state": "Rhône"}),
        client.put(f"/cities/{city_id + 1}", {"name": "A", "state": "B"}),
        client.get("/health"),
        client.delete(f"/cities/{city_id}"),
    ]
    assert [r.status for r in replies] == [201, 200, 200, 404, 409, 200, 404, 200, 200]
    assert open_connections(database_url) == 0


def test_an_unexpected_error_after_a_write_is_500_rolls_back_and_closes(
    client, sql, database_url, monkeypatch, caplog
):
    real_create = store.create

    def create_then_fail(*args, **kwargs):
        real_create(*args, **kwargs)
        raise RuntimeError("boom: postgresql://user:pw@host/db")

    monkeypatch.setattr(store, "create", create_then_fail)
    reply = client.post("/cities", {"name": "Half", "state": "Written"})

    assert reply.status == 500
    assert reply.error_code == "internal_error"
    assert "boom" not in reply.text and "Traceback" not in reply.text
    assert "RuntimeError" in caplog.text
    assert sql("SELECT count(*) FROM city") == [(0,)]
    assert open_connections(database_url) == 0


def test_a_database_error_is_500_without_sql_in_the_response(client, database_url, monkeypatch):
    def bad_query(conn, *_):
        with conn.cursor() as cur:
            cur.execute("SELECT 1/0 FROM city")

    monkeypatch.setattr(store, "get", bad_query)
    reply = client.get("/cities/1")
    assert reply.status == 500
    assert "SELECT" not in reply.text and "division" not in reply.text
    assert open_connections(database_url) == 0


def test_parallel_creates_are_all_stored_with_one_connection_per_request(
    client, sql, database_url
):
    names = [f"Parallel {n}" for n in range(40)]
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            # A finished request's backend may outlive its closed connection by a moment: one
            # idle after its COMMIT is no longer in flight.
            count = sql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cities' "
                "AND NOT (state = 'idle' AND query = 'COMMIT')"
            )
            peak = max(peak, count[0][0])

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            replies = list(
                pool.map(lambda n: client.post("/cities", {"name": n, "state": "P"}), names)
            )
    finally:
        done.set()
        watcher.join()

    assert 1 <= peak <= 8, "more connections than requests in flight"

    assert [r.status for r in replies] == [201] * 40
    ids = [r.json["id"] for r in replies]
    assert len(set(ids)) == 40
    stored = sql("SELECT id, name FROM city ORDER BY id")
    assert sorted(stored) == sorted((r.json["id"], r.json["name"]) for r in replies)
    assert open_connections(database_url) == 0


def test_parallel_creates_of_one_pair_store_exactly_one(client, sql, database_url):
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(
            pool.map(lambda _: client.post("/cities", {"name": "Twin", "state": "T"}), range(16))
        )
    assert sorted(r.status for r in replies) == [201] + [409] * 15
    assert sql("SELECT count(*) FROM city") == [(1,)]
    assert open_connections(database_url) == 0


def test_a_read_is_one_round_trip_and_leaves_its_connection_idle(client, monkeypatch):
    """`SET LOCAL statement_timeout` rides with the SELECT, whose implicit transaction ends
    with it: nothing is left for teardown to send before closing."""
    from cities.db import connection as db

    sent: list[tuple[str, int]] = []
    real_execute = db.PreludeCursor.execute

    def execute(cur, query, vars=None):
        result = real_execute(cur, query, vars)
        sent.append((query, cur.connection.get_transaction_status()))
        return result

    city_id = client.post("/cities", {"name": "Ogdenville", "state": "Oregon"}).json["id"]
    monkeypatch.setattr(db.PreludeCursor, "execute", execute)
    assert client.get(f"/cities/{city_id}").status == 200
    [(query, status)] = sent
    assert query.startswith("SELECT") and status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    sent.clear()
    assert client.post("/cities", {"name": "Ogdenville", "state": "Oregon"}).status == 409
    assert [q for q, _ in sent][-1] == "ROLLBACK"  # a failed write is rolled back, not dropped
