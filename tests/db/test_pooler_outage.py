"""A database that is down behind the pooler: a JSON 503 within the request's bound, not a hang;
a short restart ridden out; and only a statement no server saw is ever tried again.

Through PgBouncer the login always succeeds (the pooler answers it), so what an outage does to a
request is decided on its first statement: the first client finds no server and waits in the
queue; once a server login has failed, the pooler refuses the next ones outright ("server login
has been failing") for `server_login_retry` seconds. These tests stop and start the server, so
they have a pooler and a cluster of their own; its `server_login_retry` is short to keep them
quick (Neon's is PgBouncer's default, 15 s: docs/deploy.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg2
import psycopg2.extras
import pytest

from cities.db import connection as db
from cities.db import store
from tests.conftest import run_sql
from tests.support.lambda_events import Reply
from tests.support.pgbouncer import PgBouncer, pooled_cluster, stop_pooled

SERVER_LOGIN_RETRY = 1  # s, PgBouncer's pause between server logins after one failed
# What a loaded machine may add to a bound the app enforces itself: thread scheduling and the
# Lambda event round trip around the request, never the database's own time.
SCHEDULING_SLACK = 3.0
REFUSED = "pooler error: server login has been failing"  # one line per refusal
LOGIN_FAILED = "closing because: connect failed"


@pytest.fixture(scope="module")
def outage_pooler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgBouncer]:
    bouncer = pooled_cluster(
        tmp_path_factory.mktemp("outage"), pool_size=4, server_login_retry=SERVER_LOGIN_RETRY
    )
    yield bouncer
    stop_pooled(bouncer)


@pytest.fixture
def pooler(outage_pooler: PgBouncer) -> Iterator[PgBouncer]:
    """The pooler serving, on an empty `city` table; its server is started again after."""
    wait_until_served(outage_pooler)
    run_sql(outage_pooler.cluster.url(), "TRUNCATE city, idempotency_key RESTART IDENTITY")
    yield outage_pooler
    try:
        psycopg2.connect(outage_pooler.cluster.url(), connect_timeout=2).close()
    except psycopg2.OperationalError:
        outage_pooler.cluster.start()


def wait_until_served(pooler: PgBouncer, limit: float = 30.0) -> None:
    """Until a query through the pooler is answered: after a failed server login it refuses
    queries until its next login, `server_login_retry` later, succeeds."""
    give_up = time.monotonic() + limit
    while True:
        try:
            run_sql(pooler.url(), "SELECT 1")
            return
        except psycopg2.OperationalError:
            assert time.monotonic() < give_up, "the pooler does not serve again"
            time.sleep(0.1)


def wait_for_log(pooler: PgBouncer, text: str, count: int) -> None:
    """Until the pooler's log holds `text` `count` times (what it did, not a guessed delay)."""
    wait_for(lambda: pooler.log_text().count(text) >= count,
             f"the pooler never logged {text!r} {count} times")


def answered_within(limit: float, call: Callable[[], Reply]) -> tuple[Reply, float]:
    """`call()`'s reply and how long it took; fails if it has not answered after `limit` s."""
    result: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        result["reply"] = call()
        result["elapsed"] = time.monotonic() - started

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), f"no answer after {limit:.1f} s: the request hangs"
    return result["reply"], result["elapsed"]


def pooler_sockets(pooler: PgBouncer, kind: str) -> list[tuple]:
    """(database, state) of PgBouncer's CLIENTS or SERVERS for the pooled databases."""
    admin = psycopg2.connect(pooler.url("pgbouncer"))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f"SHOW {kind}")
            names = [column.name for column in cur.description]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        admin.close()
    return [(row["database"], row["state"]) for row in rows if row["database"] != "pgbouncer"]


def stop_server(pooler: PgBouncer) -> None:
    """Stop the server, and wait until the pooler has dropped the connections it had to it."""
    pooler.cluster.stop()
    wait_for(lambda: not pooler_sockets(pooler, "SERVERS"), "the pooler kept dead servers")


def wait_for(condition: Callable[[], bool], failure: str, limit: float = 30.0) -> None:
    give_up = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < give_up, failure
        time.sleep(0.02)


@pytest.mark.parametrize("reuse", [False, True], ids=["connection-per-request", "reuse"])
def test_a_database_down_behind_the_pooler_is_a_503_within_the_bound(
    pooler: PgBouncer, client_for: Callable[..., Any], reuse: bool
) -> None:
    settings = {"DB_CONNECT_BUDGET": 1.0, "DB_STATEMENT_TIMEOUT_MS": 500,
                "DB_CONNECTION_REUSE": reuse}
    bound = db.request_bound(settings)
    api = client_for(DATABASE_URL=pooler.url(), **settings)
    assert api.get("/health").status == 200
    stop_server(pooler)  # down for as long as these requests take, well past the bound
    try:
        # The first waits in the pooler's queue, the others are refused by it.
        for method, path, body in [("POST", "/cities", {"name": "Down", "state": "Town"}),
                                   ("GET", "/cities/1", None), ("GET", "/health", None),
                                   ("GET", "/cities", None)]:
            reply, elapsed = answered_within(
                bound + SCHEDULING_SLACK, lambda: api.request(method, path, body)  # noqa: B023
            )
            assert reply.status == 503, (method, path, reply.text)
            assert reply.error_code == "service_unavailable"
            assert reply.header("Retry-After") == "5"
            assert elapsed < bound + SCHEDULING_SLACK
    finally:
        pooler.cluster.start()
    wait_until_served(pooler)
    assert api.get("/health").status == 200  # the same app, once the pooler serves again
    # The pooler hands what it had queued to a server once one is back, to a client that has
    # gone: it is rolled back, so the write that answered 503 left nothing.
    wait_for(lambda: ("postgres", "waiting") not in pooler_sockets(pooler, "CLIENTS"),
             "a client stayed in the pooler's queue")
    assert run_sql(pooler.cluster.url(), "SELECT count(*) FROM city") == [(0,)]


def test_a_short_restart_behind_the_pooler_is_ridden_out(
    pooler: PgBouncer, client_for: Callable[..., Any]
) -> None:
    """Requests the pooler refuses while the server restarts wait for it, reads and writes."""
    started = time.monotonic()
    pooler.cluster.stop()
    pooler.cluster.start()
    restart = time.monotonic() - started
    # Generous against the restart as measured here: the refused requests wait for the server
    # to start, then for the pooler's next login attempt, then for their own next try.
    budget = 4 * restart + SERVER_LOGIN_RETRY + 5
    api = client_for(DATABASE_URL=pooler.url(), DB_CONNECT_BUDGET=budget)
    assert api.get("/health").status == 200
    failed_logins = pooler.log_text().count(LOGIN_FAILED)
    refusals = pooler.log_text().count(REFUSED)

    stop_server(pooler)
    with ThreadPoolExecutor(3) as pool:
        queued = pool.submit(api.get, "/cities")  # finds no server, waits in the queue
        wait_for_log(pooler, LOGIN_FAILED, failed_logins + 1)
        refused = [pool.submit(api.get, "/health"),  # refused until a login succeeds again
                   pool.submit(api.post, "/cities", {"name": "Restart", "state": "Ridden"})]
        wait_for_log(pooler, REFUSED, refusals + 2)
        pooler.cluster.start()
        replies = [queued.result(), *(future.result() for future in refused)]

    assert [reply.status for reply in replies] == [200, 200, 201], [r.text for r in replies]
    # The refused write was sent again and applied once: the pooler had sent it nowhere.
    assert run_sql(pooler.cluster.url(), "SELECT name FROM city") == [("Restart",)]


def test_a_read_sent_ahead_that_the_pooler_refuses_is_sent_again_once_served(
    pooler: PgBouncer, client_for: Callable[..., Any]
) -> None:
    """On a kept connection an item's read leaves before Flask runs (cities.http.early_read);
    refused by the pooler while its server is away, it is the request's first statement like
    any other: the view runs again on a new connection and answers once the server is back."""
    api = client_for(DATABASE_URL=pooler.url(), DB_CONNECTION_REUSE=True,
                     DB_CONNECT_BUDGET=SERVER_LOGIN_RETRY + 30)
    city = api.post("/cities", {"name": "Ahead", "state": "Refused"}).json  # now kept
    stop_server(pooler)
    make_the_pooler_refuse(pooler)
    refusals = pooler.log_text().count(REFUSED)
    with ThreadPoolExecutor(1) as pool:
        read = pool.submit(api.get, f"/cities/{city['id']}")
        wait_for_log(pooler, REFUSED, refusals + 1)  # the read sent ahead, refused
        pooler.cluster.start()
        reply = read.result()
    assert (reply.status, reply.json) == (200, city)


def test_only_the_requests_first_statement_is_tried_again(
    pooler: PgBouncer, client_for: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal of a later statement is a 503: the view does not run again."""
    runs = []

    def read_twice(conn: Any, *_: Any) -> None:
        runs.append(1)
        with conn.cursor() as cur:
            cur.execute("SELECT 1")  # answered: the request has reached the database
        if len(runs) == 1:
            stop_server(pooler)
            make_the_pooler_refuse(pooler)
        with conn.cursor() as cur:
            cur.execute("SELECT 2")

    monkeypatch.setattr(store, "get", read_twice)
    api = client_for(DATABASE_URL=pooler.url(), DB_CONNECT_BUDGET=5)
    refusals = pooler.log_text().count(REFUSED)
    reply = api.get("/cities/1")
    assert reply.status == 503
    assert pooler.log_text().count(REFUSED) == refusals + 1  # the second statement, refused
    assert runs == [1]


def make_the_pooler_refuse(pooler: PgBouncer) -> None:
    """With the server down, one query that waits for a server makes the pooler's login fail;
    it then refuses every query until a login succeeds. The waiting one is closed."""
    failed_logins = pooler.log_text().count(LOGIN_FAILED)
    waiter = psycopg2.connect(pooler.url(), async_=True)
    try:
        psycopg2.extras.wait_select(waiter)
        waiter.cursor().execute("SELECT 1")
        wait_for_log(pooler, LOGIN_FAILED, failed_logins + 1)
    finally:
        waiter.close()


@pytest.mark.parametrize(("message", "refused"), [
    ("FATAL:  server login has been failing, try again later (server_login_retry)\n"
     "server closed the connection unexpectedly\n", True),
    ("FATAL:  server login has been failing, cached error: connect failed (server_login_retry)",
     True),
    ("FATAL:  pgbouncer cannot connect to server\n", True),
    ("FATAL:  query_wait_timeout\n", True),
    ("FATAL:  server shutting down\n", True),
    ("server closed the connection unexpectedly\n\tThis probably means the server terminated "
     "abnormally\n", False),
    ("FATAL:  server conn crashed?\n", False),
    ("FATAL:  query_timeout\n", False),
    ("FATAL:  terminating connection due to administrator command\n", False),
    ("FATAL:  the database system is shutting down\n", False),
    ("ERROR:  canceling statement due to statement timeout\n", False),
    ("ERROR:  invalid input syntax for type integer: \"query_wait_timeout\"\n", False),
    ("ERROR:  could not serialize access\nDETAIL:  server login has been failing\n", False),
])
def test_only_the_poolers_own_refusals_count_as_not_forwarded(message: str, refused: bool) -> None:
    """What PgBouncer answers before sending a query anywhere; never a server's error, nor a
    lost connection, after which the statement may have run."""
    assert db.refused_before_forwarding(psycopg2.OperationalError(message)) is refused
