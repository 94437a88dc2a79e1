"""DB_CONNECTION_REUSE: one kept connection per warm container, and the safety claims around it.

These run against a cluster of their own over TCP with SCRAM (tests/support/pg_cluster.py),
because one of them restarts the server. Default mode (a connection per request) is covered by
the core suite; here: kept only when clean, replaced transparently when stale, never carrying a
transaction from one request to the next.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import pytest
from flask import Flask, request

from cities import create_app
from cities.db import connection as db
from cities.db.connection import close_db, get_db, kept_connection, transaction
from cities.db.migrate import migrate
from cities.http import lambda_entry
from cities.http.errors import ServiceUnavailable
from cities.ops import config
from tests.conftest import run_sql
from tests.support.lambda_events import (
    Client,
    alb_event,
    function_url_event,
    http_api_event,
    rest_api_event,
)
from tests.support.pg_cluster import Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    server = Cluster(tmp_path_factory.mktemp("reuse-pg"), password="reuse-secret")
    server.start()
    yield server
    server.stop("immediate")


@pytest.fixture(scope="module")
def reuse_url(cluster: Cluster) -> str:
    name = f"cities_reuse_{uuid.uuid4().hex[:8]}"
    run_sql(cluster.url(), f'CREATE DATABASE "{name}"')
    url = cluster.url(name)
    migrate(url)
    return url


def backends(url: str) -> list[tuple[int, str]]:
    """(pid, state) of the API's connections, as the server sees them."""
    return run_sql(
        url,
        "SELECT pid, state FROM pg_stat_activity WHERE application_name = 'cities' "
        "AND datname = current_database() ORDER BY pid",
    )


def wait_for_backends(url: str, count: int) -> list[tuple[int, str]]:
    deadline = time.monotonic() + 3
    while len(found := backends(url)) != count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


@pytest.fixture
def make_app(reuse_url: str) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def build(**settings: Any) -> Flask:
        app = create_app({"DATABASE_URL": reuse_url, "DB_CONNECTION_REUSE": True, **settings})
        apps.append(app)
        return app

    run_sql(reuse_url, "TRUNCATE city RESTART IDENTITY")
    yield build
    for app in apps:
        kept_connection(app).drop()


def client_for(app: Flask, make_event: Callable[..., dict] = http_api_event) -> Client:
    """Events served as `handler.api` serves them."""
    return Client.serving(app, make_event)


def test_reuse_is_off_by_default() -> None:
    assert config.from_env({})["DB_CONNECTION_REUSE"] is False
    assert config.from_env({"DB_CONNECTION_REUSE": "true"})["DB_CONNECTION_REUSE"] is True
    assert config.from_env({"DB_CONNECTION_REUSE": "0"})["DB_CONNECTION_REUSE"] is False


def test_max_idle_setting_is_checked() -> None:
    assert config.from_env({})["DB_CONNECTION_MAX_IDLE"] == config.DEFAULT_CONNECTION_MAX_IDLE
    assert config.from_env({"DB_CONNECTION_MAX_IDLE": "12.5"})["DB_CONNECTION_MAX_IDLE"] == 12.5
    for bad in ("-1", "0", "soon", "nan"):
        value = config.from_env({"DB_CONNECTION_MAX_IDLE": bad})["DB_CONNECTION_MAX_IDLE"]
        assert value == config.DEFAULT_CONNECTION_MAX_IDLE


def test_one_connection_serves_many_requests_with_no_open_transaction(
    make_app: Callable[..., Flask], reuse_url: str
) -> None:
    client = client_for(make_app())
    created = client.post("/cities", {"name": "Springfield", "state": "Illinois"})
    assert created.status == 201
    [(pid, state)] = wait_for_backends(reuse_url, 1)
    assert state == "idle"  # the write was committed, nothing left open
    for _ in range(3):
        assert client.get(f"/cities/{created.json['id']}").status == 200
        assert client.get("/cities").status == 200
        # a read's transaction is ended before the connection is kept
        assert backends(reuse_url) == [(pid, "idle")]


def test_backend_killed_between_requests_is_replaced_transparently(
    make_app: Callable[..., Flask], reuse_url: str
) -> None:
    client = client_for(make_app())
    city = client.post("/cities", {"name": "Shelbyville", "state": "Illinois"}).json
    [(pid, _)] = wait_for_backends(reuse_url, 1)
    assert run_sql(reuse_url, "SELECT pg_terminate_backend(%s)", (pid,)) == [(True,)]
    wait_for_backends(reuse_url, 0)

    reply = client.get(f"/cities/{city['id']}")
    assert reply.status == 200
    assert reply.json == city
    [(new_pid, state)] = wait_for_backends(reuse_url, 1)
    assert new_pid != pid
    assert state == "idle"


def test_server_restart_between_requests_is_survived(
    make_app: Callable[..., Flask], reuse_url: str, cluster: Cluster
) -> None:
    client = client_for(make_app())
    city = client.post("/cities", {"name": "Ogdenville", "state": "Illinois"}).json
    [(pid, _)] = wait_for_backends(reuse_url, 1)
    cluster.stop()  # fast shutdown: the server terminates every backend, then comes back
    cluster.start()

    reply = client.get(f"/cities/{city['id']}")
    assert reply.status == 200
    assert reply.json == city
    [(new_pid, _)] = wait_for_backends(reuse_url, 1)
    assert new_pid != pid


def test_failed_statement_drops_the_connection(
    make_app: Callable[..., Flask], reuse_url: str
) -> None:
    client = client_for(make_app())
    body = {"name": "Capital City", "state": "Illinois"}
    assert client.post("/cities", body).status == 201
    [(pid, _)] = wait_for_backends(reuse_url, 1)

    assert client.post("/cities", body).status == 409  # the INSERT aborted the transaction
    assert wait_for_backends(reuse_url, 0) == []  # dropped, not kept in its aborted state

    assert client.get("/cities").status == 200
    [(new_pid, state)] = wait_for_backends(reuse_url, 1)
    assert new_pid != pid
    assert state == "idle"


def test_aborted_transaction_never_reaches_the_next_request(
    make_app: Callable[..., Flask], reuse_url: str
) -> None:
    app = make_app()
    with app.app_context():
        conn = transaction()
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.DivisionByZero):
            cur.execute("SELECT 1 / 0")
        assert conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INERROR
    assert conn.closed
    with app.app_context():
        fresh = get_db()
        assert fresh is not conn
        with fresh.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)


def test_uncommitted_write_is_rolled_back_not_carried_over(
    make_app: Callable[..., Flask], reuse_url: str
) -> None:
    app = make_app()
    with app.app_context():
        conn = transaction()
        with conn.cursor() as cur:
            cur.execute("INSERT INTO city (name, state) VALUES ('Never', 'Committed')")
    assert not conn.closed  # kept, after a rollback
    assert run_sql(reuse_url, "SELECT count(*) FROM city") == [(0,)]
    assert backends(reuse_url)[0][1] == "idle"
    with app.app_context():
        assert get_db() is conn  # reused, in a fresh transaction that cannot see the insert
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM city")
            assert cur.fetchone() == (0,)


def test_unhandled_exception_drops_the_connection(
    make_app: Callable[..., Flask], reuse_url: str
) -> None:
    app = make_app()
    with app.app_context():
        conn = get_db()
        close_db(RuntimeError("the request failed"))
    assert conn.closed
    assert wait_for_backends(reuse_url, 0) == []


def test_connection_idle_too_long_is_replaced(
    make_app: Callable[..., Flask], reuse_url: str
) -> None:
    client = client_for(make_app(DB_CONNECTION_MAX_IDLE=0.05))
    assert client.get("/cities").status == 200
    [(pid, _)] = wait_for_backends(reuse_url, 1)
    time.sleep(0.1)
    assert client.get("/cities").status == 200
    [(new_pid, _)] = wait_for_backends(reuse_url, 1)
    assert new_pid != pid


def test_second_connection_of_concurrent_requests_is_closed(
    make_app: Callable[..., Flask], reuse_url: str
) -> None:
    app = make_app()
    with app.app_context():
        first = get_db()
        with app.app_context():  # a second request while the first holds the connection
            second = get_db()
            assert second is not first
        assert not second.closed  # kept: the slot was free
    assert first.closed  # the slot was taken: closed rather than leaked
    assert len(wait_for_backends(reuse_url, 1)) == 1


def test_requests_without_data_take_no_connection(
    make_app: Callable[..., Flask], reuse_url: str
) -> None:
    client = client_for(make_app())
    assert client.get("/openapi.json").status == 200
    assert backends(reuse_url) == []


def test_kept_connection_dead_without_notice_is_replaced_before_use(
    make_app: Callable[..., Flask], reuse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flow dropped silently (no notice, no EOF) fails on BEGIN: nothing was sent, reconnect."""
    client = client_for(make_app())
    city = client.post("/cities", {"name": "North Haverbrook", "state": "Illinois"}).json
    [(pid, _)] = wait_for_backends(reuse_url, 1)
    assert run_sql(reuse_url, "SELECT pg_terminate_backend(%s)", (pid,)) == [(True,)]
    wait_for_backends(reuse_url, 0)
    monkeypatch.setattr(db, "_has_unread_data", lambda conn: False)  # the check sees nothing

    reply = client.get(f"/cities/{city['id']}")
    assert reply.status == 200
    assert reply.json == city
    [(new_pid, _)] = wait_for_backends(reuse_url, 1)
    assert new_pid != pid


def statements_seen(cluster: Cluster, since: int) -> list[str]:
    """The query messages the server received after byte `since` of its log (log_statement)."""
    text = (cluster.data / "log").read_text()[since:]
    return [line.split("statement: ", 1)[1] for line in text.splitlines() if "statement: " in line]


def test_a_read_on_a_kept_connection_is_one_round_trip(
    make_app: Callable[..., Flask], reuse_url: str, cluster: Cluster
) -> None:
    """`SET LOCAL statement_timeout; SELECT` in one message, as on a new connection: no BEGIN
    before it, no ROLLBACK after it; the connection is idle again when the answer arrives."""
    [(database,)] = run_sql(reuse_url, "SELECT current_database()")
    run_sql(reuse_url, f'ALTER DATABASE "{database}" SET log_statement = \'all\'')
    try:
        client = client_for(make_app())
        city = client.post("/cities", {"name": "Ogdenville", "state": "Illinois"}).json
        assert client.get(f"/cities/{city['id']}").status == 200  # the connection is kept now
        since = (cluster.data / "log").stat().st_size
        for _ in range(3):
            assert client.get(f"/cities/{city['id']}").json == city
        seen = statements_seen(cluster, since)
        assert len(seen) == 3, seen
        assert all(s.startswith("SET LOCAL statement_timeout") for s in seen)
        assert backends(reuse_url) == [(backends(reuse_url)[0][0], "idle")]
    finally:
        run_sql(reuse_url, f'ALTER DATABASE "{database}" RESET log_statement')


def test_a_write_on_a_dead_kept_connection_is_sent_once_on_a_new_one(
    make_app: Callable[..., Flask], reuse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kept connection is probed with BEGIN alone before a write: it fails there, so the
    view runs again on a new connection and the row is created exactly once."""
    client = client_for(make_app())
    assert client.get("/cities").status == 200
    [(pid, _)] = wait_for_backends(reuse_url, 1)
    assert run_sql(reuse_url, "SELECT pg_terminate_backend(%s)", (pid,)) == [(True,)]
    wait_for_backends(reuse_url, 0)
    monkeypatch.setattr(db, "_has_unread_data", lambda conn: False)  # the check sees nothing

    assert client.post("/cities", {"name": "Brockway", "state": "Illinois"}).status == 201
    assert run_sql(reuse_url, "SELECT count(*) FROM city WHERE name = 'Brockway'") == [(1,)]


def watch_reads_sent_ahead(app: Flask) -> list[bool | None]:
    """What each request's first hook finds: None when no read was sent ahead, else whether
    that read is still on its way (Flask has not waited for it)."""
    seen: list[bool | None] = []

    @app.before_request
    def look() -> None:
        conn = request.environ.get(db.SENT_AHEAD)
        seen.append(None if conn is None else bool(conn.isexecuting()))

    return seen


def test_an_items_read_is_on_the_wire_before_flask_runs(
    make_app: Callable[..., Flask], reuse_url: str, cluster: Cluster
) -> None:
    """On a kept connection `GET /cities/{id}` is sent before Flask runs, so its round trip
    overlaps Flask's set-up; the answer, the ETag and the one message per read are the same."""
    app = make_app()
    seen = watch_reads_sent_ahead(app)
    client = client_for(app)
    city = client.post("/cities", {"name": "Capital City", "state": "Illinois"}).json
    first = client.get(f"/cities/{city['id']}")
    assert first.json == city
    assert seen == [None, True]  # the POST reads nothing ahead; the GET's read was pending
    again = client.get(f"/cities/{city['id']}", headers={"If-None-Match": first.header("ETag")})
    assert again.status == 304
    assert client.request("HEAD", f"/cities/{city['id']}").status == 200
    assert seen[2:] == [True, True]
    assert backends(reuse_url) == [(backends(reuse_url)[0][0], "idle")]


def test_only_canonical_item_reads_are_sent_ahead(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    seen = watch_reads_sent_ahead(app)
    client = client_for(app)
    city = client.post("/cities", {"name": "Shelbyville", "state": "Illinois"}).json
    assert client.get("/cities").status == 200
    assert client.get(f"/cities/0{city['id']}").status == 404  # not the item's URL
    assert client.delete(f"/cities/{city['id']}").status == 200
    assert seen == [None, None, None, None]


def test_a_read_sent_ahead_that_no_view_takes_is_dropped_with_its_connection(
    make_app: Callable[..., Flask], reuse_url: str
) -> None:
    """An error before the view (here a hook's 503) leaves the answer unread: the connection is
    closed, not kept with a statement pending, and the next request is served."""
    app = make_app()
    refusing = {"on": False}

    @app.before_request
    def refuse() -> None:
        if refusing["on"]:
            raise ServiceUnavailable("refused before the view")

    client = client_for(app)
    city = client.post("/cities", {"name": "Cypress Creek", "state": "Illinois"}).json
    [(pid, _)] = wait_for_backends(reuse_url, 1)
    refusing["on"] = True
    assert client.get(f"/cities/{city['id']}").status == 503
    assert wait_for_backends(reuse_url, 0) == []
    refusing["on"] = False
    assert client.get(f"/cities/{city['id']}").json == city
    [(new_pid, _)] = wait_for_backends(reuse_url, 1)
    assert new_pid != pid


def watch_reads_sent_by_the_entry(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """For each event serverless-wsgi translates: was its read already on the wire?"""
    ahead = app.extensions[lambda_entry.EARLY_READ]
    translate = lambda_entry.serverless_wsgi.handle_request
    seen: list[bool] = []

    def watched(wsgi_app: Any, event: dict, context: Any) -> dict:
        conn = ahead.sent.get(id(event))
        seen.append(conn is not None and bool(conn.isexecuting()))
        return translate(wsgi_app, event, context)

    monkeypatch.setattr(lambda_entry.serverless_wsgi, "handle_request", watched)
    return seen


@pytest.mark.parametrize(
    "make_event",
    [http_api_event, lambda *a, **k: http_api_event(*a, stage="dev", **k), rest_api_event,
     function_url_event, alb_event],
    ids=["http-api", "http-api-named-stage", "rest-api", "function-url", "alb"],
)
def test_the_lambda_entry_sends_the_read_before_serverless_wsgi_translates_the_event(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch,
    make_event: Callable[..., dict],
) -> None:
    """The entry reads the item's URL off the raw event (its stage, if any, before it), so the
    round trip also overlaps serverless-wsgi's work; the middleware confirms it is the read of
    the path the app routes and the view waits for that answer."""
    app = make_app()
    in_flask = watch_reads_sent_ahead(app)
    client = client_for(app, make_event)
    city = client.post("/cities", {"name": "North Haverbrook", "state": "Illinois"}).json
    by_entry = watch_reads_sent_by_the_entry(app, monkeypatch)
    assert client.get(f"/cities/{city['id']}").json == city
    assert client.get("/cities").status == 200
    assert by_entry == [True, False]
    assert in_flask == [None, True, None]
    assert app.extensions[lambda_entry.EARLY_READ].sent == {}


def test_a_read_sent_for_a_path_that_only_looks_like_an_item_is_dropped(
    make_app: Callable[..., Flask], reuse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`/elsewhere/cities/{id}` ends like an item's URL, so the entry sends its read; the app
    routes no such path, so the middleware drops that read with its connection: a 404, and the
    next request is served on a new connection."""
    app = make_app()
    client = client_for(app)
    city = client.post("/cities", {"name": "Brockway", "state": "Illinois"}).json
    [(pid, _)] = wait_for_backends(reuse_url, 1)
    by_entry = watch_reads_sent_by_the_entry(app, monkeypatch)
    assert client.get(f"/elsewhere/cities/{city['id']}").status == 404
    assert by_entry == [True]
    assert wait_for_backends(reuse_url, 0) == []
    assert client.get(f"/cities/{city['id']}").json == city
    [(new_pid, _)] = wait_for_backends(reuse_url, 1)
    assert new_pid != pid


def test_a_read_sent_for_an_event_serverless_wsgi_refuses_is_dropped(
    make_app: Callable[..., Flask], reuse_url: str
) -> None:
    """A GET whose body is flagged base64 but is not: the read went out before the translation
    failed; the entry answers 400 and drops that read with its connection."""
    app = make_app()
    client = client_for(app)
    city = client.post("/cities", {"name": "Waverly Hills", "state": "Illinois"}).json
    wait_for_backends(reuse_url, 1)
    event = http_api_event("GET", f"/cities/{city['id']}")
    event.update(body="*not base64*", isBase64Encoded=True)
    assert lambda_entry.serve(app, event, None)["statusCode"] == 400
    assert app.extensions[lambda_entry.EARLY_READ].sent == {}
    assert wait_for_backends(reuse_url, 0) == []
    assert client.get(f"/cities/{city['id']}").json == city


@pytest.mark.parametrize("event", [
    ["GET", "/cities/1"],
    {"version": "2.0", "rawPath": "/cities/1", "requestContext": "GET"},
    {"version": "2.0", "rawPath": ["/cities/1"], "requestContext": {"http": {"method": "GET"}}},
    {"httpMethod": {"GET": 1}, "path": "/cities/1"},
], ids=["a-list", "context-not-an-object", "path-not-a-string", "method-not-a-string"])
def test_malformed_events_are_answered_as_json_with_reads_sent_ahead_on(
    make_app: Callable[..., Flask], event: Any
) -> None:
    """What the entry reads off an event before serverless-wsgi cannot make it fail otherwise."""
    app = make_app()
    reply = lambda_entry.serve(app, event, None)
    assert reply["statusCode"] in (400, 404, 405), reply
    assert "error" in json.loads(reply["body"])
    assert app.extensions[lambda_entry.EARLY_READ].sent == {}
