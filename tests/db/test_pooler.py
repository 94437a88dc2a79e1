"""Through a real PgBouncer in transaction mode, as on Neon's `-pooler` endpoint.

Every route works, a runaway statement is a 503 that leaves no setting behind on the pooled
servers, reads hand their server back instead of making PostgreSQL fork a new one, reuse mode is
fair, and migrations given the pooler by mistake still apply each file once and leak no lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg2
import pytest

from cities import create_app
from cities.db import store
from cities.db.connection import kept_connection
from cities.db.migrate import migrate
from cities.ops.config import MAX_CONNECT_BUDGET
from tests.conftest import run_sql
from tests.support.lambda_events import Client
from tests.support.pgbouncer import PgBouncer, pooled_cluster, stop_pooled

POOL_SIZE = 10
NOT_READY = "client disconnect while server was not ready"


@pytest.fixture(scope="module")
def pooler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgBouncer]:
    """PostgreSQL with SCRAM, migrated on its direct port, behind PgBouncer (pool size 10)."""
    bouncer = pooled_cluster(tmp_path_factory.mktemp("pooler"), pool_size=POOL_SIZE)
    yield bouncer
    stop_pooled(bouncer)


@pytest.fixture
def pooled(pooler: PgBouncer) -> Iterator[PgBouncer]:
    """The pooler, on an empty `city` table, with every app built by `client` cleaned up."""
    run_sql(pooler.cluster.url(),
            "TRUNCATE city, idempotency_key, write_quota RESTART IDENTITY")
    yield pooler
    for app in _apps:
        kept_connection(app).drop()
    _apps.clear()


_apps: list[Any] = []


def client(url: str, **settings: Any) -> Client:
    app = create_app({"DATABASE_URL": url, **settings})
    _apps.append(app)
    return Client.serving(app)


def server_sessions(pooler: PgBouncer) -> int:
    """Server connections PgBouncer has opened so far (each one a forked, authenticated backend)."""
    return pooler.log_text().count("new connection to server")


def not_ready_disconnects(pooler: PgBouncer) -> int:
    return pooler.log_text().count(NOT_READY)


def test_every_route_answers_through_the_pooler(pooled: PgBouncer) -> None:
    api = client(pooled.url())
    assert api.get("/health").json["database"] == "ok"
    created = api.post("/cities", {"name": "Springfield", "state": "Illinois"})
    assert created.status == 201
    city_id = created.json["id"]
    assert api.get(f"/cities/{city_id}").json == created.json
    assert api.get("/cities?q=spring").json == [created.json]
    assert api.put(f"/cities/{city_id}", {"name": "Shelbyville", "state": "Illinois"}).status == 200
    assert api.patch(f"/cities/{city_id}", {"state": "Kentucky"}).json["state"] == "Kentucky"
    assert api.post("/cities", {"name": "Shelbyville", "state": "Kentucky"}).status == 409
    assert api.get("/cities/999999").status == 404
    assert api.delete(f"/cities/{city_id}").status == 200
    assert api.get("/cities").json == []
    assert api.get("/openapi.json").status == 200


def test_idempotent_create_and_its_replay_through_the_pooler(pooled: PgBouncer) -> None:
    api = client(pooled.url())
    body = {"name": "Ogdenville", "state": "Oregon"}
    first = api.post("/cities", body, headers={"Idempotency-Key": "pooled-1"})
    replay = api.post("/cities", body, headers={"Idempotency-Key": "pooled-1"})
    assert first.status == replay.status == 201
    assert replay.json == first.json
    assert replay.header("Idempotent-Replayed") == "true"
    misuse = api.post("/cities", {**body, "state": "Ohio"}, headers={"Idempotency-Key": "pooled-1"})
    assert misuse.status == 422
    assert run_sql(pooled.cluster.url(), "SELECT count(*) FROM city") == [(1,)]


def test_a_burst_past_the_quota_gets_exactly_the_quota_through_the_pooler(
        pooled: PgBouncer) -> None:
    """M concurrent writes by one writer against a quota of N < M, on more clients than pooled
    servers: exactly N succeed and M - N are 429; another writer's writes meanwhile all pass."""
    quota, burst, others = 12, 30, 6
    # 36 SCRAM logins at once on a loaded machine: the suite's 1 s connect budget is too short.
    api = client(pooled.url(), API_KEYS=("alice:alice-key", "bob:bob-key"), WRITE_QUOTA=quota,
                 DB_CONNECT_BUDGET=MAX_CONNECT_BUDGET, DB_CONNECT_TIMEOUT=int(MAX_CONNECT_BUDGET))
    start = threading.Barrier(burst + others)

    def write(writer: str, n: int) -> int:
        start.wait()
        return api.post("/cities", {"name": f"{writer} {n}", "state": "Oregon"},
                        headers={"authorization": f"Bearer {writer}-key"}).status

    with ThreadPoolExecutor(burst + others) as pool:
        alice = [pool.submit(write, "alice", n) for n in range(burst)]
        bob = [pool.submit(write, "bob", n) for n in range(others)]
        statuses = [f.result() for f in alice], [f.result() for f in bob]

    assert sorted(statuses[0]) == [201] * quota + [429] * (burst - quota)
    assert statuses[1] == [201] * others
    url = pooled.cluster.url()
    assert run_sql(url, "SELECT count(*) FROM city WHERE name LIKE 'alice %'") == [(quota,)]
    assert dict(run_sql(url, "SELECT writer, writes FROM write_quota")) == {
        "api_key:alice": quota, "api_key:bob": others}


def pooled_statement_timeouts(pooler: PgBouncer) -> set[str]:
    """statement_timeout on every pooled server: one open transaction per server pins them all."""
    conns = [psycopg2.connect(pooler.url()) for _ in range(POOL_SIZE)]
    try:
        seen = set()
        for conn in conns:  # not autocommit: each keeps its server until rolled back
            with conn.cursor() as cur:
                cur.execute("SHOW statement_timeout")
                seen.add(cur.fetchone()[0])
        return seen
    finally:
        for conn in conns:
            conn.close()


def test_a_runaway_statement_is_503_and_leaves_no_setting_on_pooled_servers(
    pooled: PgBouncer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def runaway(conn: Any, *_: Any) -> None:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_sleep(10)")

    monkeypatch.setattr(store, "get", runaway)
    api = client(pooled.url(), DB_STATEMENT_TIMEOUT_MS=200)
    started = time.monotonic()
    with ThreadPoolExecutor(POOL_SIZE) as pool:  # on several servers at once
        replies = list(pool.map(lambda _: api.get("/cities/1"), range(POOL_SIZE)))
    assert {reply.status for reply in replies} == {503}
    assert time.monotonic() - started < 5
    assert pooled_statement_timeouts(pooled) == {"0"}


def test_reads_hand_their_server_back_instead_of_forking_new_ones(pooled: PgBouncer) -> None:
    """60 requests from 20 concurrent 'containers', a connection each: near POOL_SIZE backends."""
    seed = client(pooled.url())
    city_id = seed.post("/cities", {"name": "Capital City", "state": "Illinois"}).json["id"]
    # It counts backends, not seconds: the suite's 1 s connect budget would turn 20 connects
    # queued on a busy machine into 503s, so each gets the longest budget a setting allows.
    api = client(pooled.url(), DB_CONNECT_BUDGET=MAX_CONNECT_BUDGET,
                 DB_CONNECT_TIMEOUT=int(MAX_CONNECT_BUDGET))
    paths = [f"/cities/{city_id}", "/cities?limit=5", "/health"] * 20
    before, errors_before = server_sessions(pooled), not_ready_disconnects(pooled)
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda path: api.get(path).status, paths))
    assert statuses == [200] * len(paths)
    created = server_sessions(pooled) - before
    assert created <= POOL_SIZE, f"{created} backends forked for {len(paths)} reads"
    assert not_ready_disconnects(pooled) == errors_before


def test_failed_writes_also_hand_their_server_back(pooled: PgBouncer) -> None:
    api = client(pooled.url())
    body = {"name": "Brockway", "state": "Illinois"}
    assert api.post("/cities", body).status == 201
    errors_before = not_ready_disconnects(pooled)
    for _ in range(5):
        assert api.post("/cities", body).status == 409  # the INSERT aborted the transaction
    assert not_ready_disconnects(pooled) == errors_before


def test_reuse_mode_through_the_pooler_keeps_one_client_connection_and_no_transaction(
    pooled: PgBouncer,
) -> None:
    api = client(pooled.url(), DB_CONNECTION_REUSE=True)
    city = api.post("/cities", {"name": "North Haverbrook", "state": "Illinois"}).json
    before = pooled.log_text().count("login attempt")
    for _ in range(20):
        assert api.get(f"/cities/{city['id']}").json == city
        assert api.get("/cities").status == 200
    assert pooled.log_text().count("login attempt") == before  # one client connection, kept
    states = run_sql(
        pooled.cluster.url(),
        "SELECT state FROM pg_stat_activity WHERE backend_type = 'client backend' "
        "AND pid <> pg_backend_pid()",
    )
    assert ("idle in transaction",) not in states


# --- migrations given the pooler --------------------------------------------------------------


def test_concurrent_migrations_through_the_pooler_apply_each_file_once(
    pooled: PgBouncer, tmp_path: Any
) -> None:
    name = "cities_pooled_migrations"
    run_sql(pooled.cluster.url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    run_sql(pooled.cluster.url(), f'CREATE DATABASE "{name}"')
    url = pooled.url(name)
    runs = 6
    barrier = threading.Barrier(runs)

    def run(_: int) -> dict:
        barrier.wait()
        return migrate(url)

    with ThreadPoolExecutor(runs) as pool:
        results = list(pool.map(run, range(runs)))
    applied = [name for result in results for name in result["applied"]]
    direct = pooled.cluster.url(name)
    shipped = run_sql(direct, "SELECT name FROM schema_migrations ORDER BY version")
    assert sorted(applied) == [row[0] for row in shipped]  # each file applied by exactly one run
    assert {result["version"] for result in results} == {len(shipped)}
    assert run_sql(direct, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == [(0,)]


def test_migrate_cli_through_the_pooler_needs_no_lock_held_between_runs(pooled: PgBouncer) -> None:
    """Run after run, the next migration is never blocked by a lock a previous one left: none
    is held between runs (a run that met one would wait out its lock_timeout and fail)."""
    for _ in range(5):
        assert migrate(pooled.url(), connect_timeout=3)["applied"] == []
        assert run_sql(
            pooled.cluster.url(), "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        ) == [(0,)]
