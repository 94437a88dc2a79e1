"""Through a stock shared cache, no read is ever stale: Debian's Varnish with its builtin VCL,
which keeps any 200 that does not forbid it for 120 s (`default_ttl`) and never drops a stored
copy when a write passes through it, in front of the app on a real HTTP server and a real
PostgreSQL this module may stop.

Varnish does not store `no-cache` responses at all (it fetches every read, and answers a client's
If-None-Match itself from the fresh response); a request with `Authorization` passes through it,
If-None-Match included, and the API answers the 304. tests/api/test_cache_control.py is the header
policy, route by route.

With SHARED_CACHE_MAX_AGE=N (a second app and Varnish, `shared`), reads of items and lists are
kept: for N seconds they reach neither the app nor PostgreSQL (its statement log counts what the
app sent), for N more the old copy is served while one background fetch gets the new one, and
then every read is the new version. N is derived from the measured time of a request through the
cache, so a slow machine gets a longer N, never a failure.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import pytest

from cities import create_app
from cities.db.connection import APPLICATION_NAME
from tests.conftest import local_server
from tests.support.lambda_events import Reply
from tests.support.pg_cluster import Cluster, free_port, migrated_cluster
from tests.support.pgbouncer import SEARCH_PATH

VARNISHD = shutil.which("varnishd") or shutil.which("varnishd", path=SEARCH_PATH)
pytestmark = pytest.mark.skipif(
    VARNISHD is None,
    reason="no varnishd installed (Debian: apt-get install varnish; .ci/run installs it)",
)


@dataclass
class Origin:
    """The app as the cache's backend, recording what reached it: (method, path, status)."""

    app: Any
    seen: list[tuple[str, str, int]] = field(default_factory=list)

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        def record(status: str, headers: list, *args: Any) -> Any:
            self.seen.append((environ["REQUEST_METHOD"], environ["PATH_INFO"],
                              int(status.split()[0])))
            return start_response(status, headers, *args)

        return self.app(environ, record)

    def asked(self, action: Callable[[], Reply]) -> tuple[Reply, list[tuple[str, str, int]]]:
        """What `action` got through the cache, and what of it reached the origin."""
        before = len(self.seen)
        reply = action()
        return reply, self.seen[before:]


@contextlib.contextmanager
def varnish(backend: str, root: Path) -> Iterator[str]:
    """varnishd as Debian ships it (builtin VCL, stock parameters) on a free 127.0.0.1 port in
    front of `backend`; its working directory under `root`. `-j none`: no jail, so it runs as
    whoever starts it (as root its default jail's users could not enter pytest's 0700 dirs)."""
    port = free_port()
    backend_address = urlsplit(backend).netloc
    root.mkdir(parents=True, exist_ok=True)
    with (root / "console.log").open("ab") as console:
        process = subprocess.Popen(
            [VARNISHD, "-F", "-j", "none", "-T", "none", "-n", str(root / "work"),
             "-a", f"127.0.0.1:{port}", "-b", backend_address, "-s", "malloc,32m"],
            stdout=console, stderr=console, cwd=root,
        )
    try:
        # Starting compiles the VCL with the system's C compiler: wait as long as it takes.
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"varnishd did not start: {(root / 'console.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Through:
    """An HTTP client of the cache (one connection per request, as separate clients would)."""

    def __init__(self, address: str) -> None:
        self.address = address

    def request(self, method: str, path: str, body: Any = None, **headers: str) -> Reply:
        conn = http.client.HTTPConnection(self.address, timeout=60)
        try:
            sent = {k.replace("_", "-"): v for k, v in headers.items()}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                sent["Content-Type"] = "application/json"
            conn.request(method, path, data, sent)
            response = conn.getresponse()
            text = response.read().decode()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, text)
        finally:
            conn.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A migrated cluster of the module's own: the /health test stops it."""
    with migrated_cluster(tmp_path_factory.mktemp("cache-pg")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def origin(cluster: Cluster) -> Origin:
    return Origin(create_app({"DATABASE_URL": cluster.url(), "DB_CONNECT_BUDGET": 1}))


@pytest.fixture(scope="module")
def cache(origin: Origin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Through]:
    with local_server(origin, "") as backend, varnish(
        backend, tmp_path_factory.mktemp("varnish")
    ) as address:
        yield Through(address)


class Statements:
    """What the app sent PostgreSQL, from the server's statement log (`log_statement = all`,
    each line prefixed with its connection's application_name: the app's is `cities`)."""

    def __init__(self, cluster: Cluster) -> None:
        self.log = cluster.data / "log"
        conn = psycopg2.connect(cluster.url())
        conn.autocommit = True
        with conn.cursor() as cur:  # in postgresql.auto.conf: kept when a test restarts it
            cur.execute("ALTER SYSTEM SET log_statement = 'all'")
            cur.execute("ALTER SYSTEM SET log_line_prefix = '%a|'")
            cur.execute("SELECT pg_reload_conf()")
        conn.close()
        deadline = time.monotonic() + 60  # the reload is asynchronous: until a line shows it
        while not self.count() and time.monotonic() < deadline:
            probe = psycopg2.connect(cluster.url(), application_name=APPLICATION_NAME)
            probe.cursor().execute("SELECT 1")
            probe.close()
            time.sleep(0.05)
        assert self.count(), "the server's statement log stays empty"

    def count(self) -> int:
        prefix = f"{APPLICATION_NAME}|"
        text = self.log.read_text(errors="replace")
        return sum(line.startswith(prefix) and "statement: " in line
                   for line in text.splitlines())


@pytest.fixture(scope="module")
def statements(cluster: Cluster) -> Statements:
    return Statements(cluster)


@pytest.fixture(scope="module")
def max_age(cache: Through) -> int:
    """N: at least 2 s, and 20 times the slowest of a few requests that reach PostgreSQL
    through the cache, so that several reads fit inside it on any machine."""
    slowest = 0.0
    for _ in range(5):
        started = time.monotonic()
        assert cache.request("GET", "/health").status == 200
        slowest = max(slowest, time.monotonic() - started)
    return max(2, math.ceil(20 * slowest))


@pytest.fixture(scope="module")
def shared_origin(cluster: Cluster, max_age: int) -> Origin:
    return Origin(create_app({"DATABASE_URL": cluster.url(), "DB_CONNECT_BUDGET": 1,
                              "SHARED_CACHE_MAX_AGE": max_age}))


@pytest.fixture(scope="module")
def shared(shared_origin: Origin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Through]:
    """Varnish, stock, in front of the app with SHARED_CACHE_MAX_AGE set."""
    with local_server(shared_origin, "") as backend, varnish(
        backend, tmp_path_factory.mktemp("varnish-shared")
    ) as address:
        yield Through(address)


@pytest.fixture
def running(cluster: Cluster) -> Cluster:
    """The cluster up, with no city (ids go on: no test meets another's cached URLs): restarted
    if a test left it down."""
    try:
        psycopg2.connect(cluster.url(), connect_timeout=2).close()
    except psycopg2.OperationalError:
        cluster.start()
    conn = psycopg2.connect(cluster.url())
    with conn, conn.cursor() as cur:
        cur.execute("TRUNCATE city, idempotency_key")
    conn.close()
    return cluster


def test_every_read_after_a_write_is_the_new_version(running, cache, origin):
    created = cache.request("POST", "/cities", {"name": "Lyon", "state": "ARA"})
    assert created.status == 201
    item = f"/cities/{created.json['id']}"
    assert cache.request("GET", item).json["state"] == "ARA"
    assert cache.request("GET", "/cities").json == [created.json]

    updated = cache.request("PUT", item, {"name": "Lyon", "state": "Rhône"},
                            If_Match=created.header("ETag"))
    assert updated.status == 200
    read, reached = origin.asked(lambda: cache.request("GET", item))
    assert (read.json, read.header("ETag")) == (updated.json, updated.header("ETag"))
    assert reached == [("GET", item, 200)]  # asked the origin, not a stored copy
    assert cache.request("HEAD", item).header("ETag") == updated.header("ETag")
    assert cache.request("GET", "/cities").json == [updated.json]
    # A client's copy of the old version is not "current": it gets the new one.
    stale = cache.request("GET", item, If_None_Match=created.header("ETag"))
    assert (stale.status, stale.json) == (200, updated.json)

    assert cache.request("DELETE", item).status == 200
    gone = cache.request("GET", item)
    assert (gone.status, gone.json["error"]["code"]) == (404, "not_found")
    assert cache.request("GET", "/cities").json == []


def test_a_current_etag_is_a_304_decided_by_the_origin(running, cache, origin):
    created = cache.request("POST", "/cities", {"name": "Lille", "state": "Nord"})
    item, tag = f"/cities/{created.json['id']}", created.header("ETag")
    assert cache.request("GET", item).status == 200

    # Varnish fetches the current version from the origin and compares the tags itself.
    same, reached = origin.asked(lambda: cache.request("GET", item, If_None_Match=tag))
    assert (same.status, same.text, same.header("ETag")) == (304, "", tag)
    assert reached == [("GET", item, 200)]
    # A request with a key passes through Varnish, If-None-Match included: the API's own 304.
    keyed, reached = origin.asked(
        lambda: cache.request("GET", item, If_None_Match=tag, Authorization="Bearer k")
    )
    assert (keyed.status, keyed.header("ETag")) == (304, tag)
    assert reached == [("GET", item, 304)]


def until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def test_for_max_age_reads_reach_neither_the_function_nor_postgresql(
    running, shared, shared_origin, statements, max_age
):
    created = shared.request("POST", "/cities", {"name": "Nantes", "state": "Pays de la Loire"})
    item = f"/cities/{created.json['id']}"
    listing = "/cities?state=pays%20de%20la%20loire"
    started = time.monotonic()  # before either copy is stored: each is fresh until started + N
    first = shared.request("GET", item)
    assert first.header("Cache-Control") == (
        f"public, max-age={max_age}, stale-while-revalidate={max_age}")
    assert shared.request("GET", listing).json == [created.json]

    sent, reads = statements.count(), 0
    reached = []
    while time.monotonic() < started + max_age and reads < 40:
        for target in (item, listing):
            reply, seen = shared_origin.asked(lambda t=target: shared.request("GET", t))
            reached += seen
            assert reply.status == 200
        head, seen = shared_origin.asked(lambda: shared.request("HEAD", item))
        reached += seen
        assert head.header("ETag") == first.header("ETag")
        # A client's current copy: Varnish answers its If-None-Match from the stored one.
        same, seen = shared_origin.asked(
            lambda: shared.request("GET", item, If_None_Match=first.header("ETag")))
        reached += seen
        assert same.status == 304
        reads += 4
        time.sleep(max_age / 40)
    assert reads >= 4
    assert (reached, statements.count()) == ([], sent)


def test_after_max_age_reads_are_the_new_version(running, shared, shared_origin, max_age):
    created = shared.request("POST", "/cities", {"name": "Brest", "state": "Bretagne"})
    item = f"/cities/{created.json['id']}"
    started = time.monotonic()
    assert shared.request("GET", item).json == created.json
    stored = time.monotonic()  # the copy's age counts from between started and stored
    updated, reached = shared_origin.asked(lambda: shared.request(
        "PUT", item, {"name": "Brest", "state": "Finistère"}, If_Match=created.header("ETag")))
    assert (updated.status, reached) == (200, [("PUT", item, 200)])  # If-Match reached the API
    # The accepted staleness: someone else's write is not seen until the copy expires.
    if time.monotonic() < started + max_age:
        assert shared.request("GET", item).json == created.json

    # Past N, within N more: the old copy at once, while one fetch gets the new version.
    until(stored + max_age)
    stale, reached = shared_origin.asked(lambda: shared.request("GET", item))
    if time.monotonic() < started + 2 * max_age:
        assert stale.json == created.json
        deadline = time.monotonic() + max_age
        while not reached and time.monotonic() < deadline:
            time.sleep(max_age / 40)
            reached = shared_origin.seen[-1:]
        assert reached == [("GET", item, 200)]  # the background refresh
        fresh, reached = shared_origin.asked(lambda: shared.request("GET", item))
        assert (fresh.json, reached) == (updated.json, [])

    # Past 2N, whatever happened meanwhile: the new version.
    until(stored + 2 * max_age)
    fresh = shared.request("GET", item)
    assert (fresh.json, fresh.header("ETag")) == (updated.json, updated.header("ETag"))


def test_writes_and_errors_are_never_kept(running, shared, shared_origin):
    created = shared.request("POST", "/cities", {"name": "Metz", "state": "Moselle"})
    item = f"/cities/{created.json['id']}"
    for _ in range(2):
        patched, reached = shared_origin.asked(
            lambda: shared.request("PATCH", item, {"state": "Grand Est"}))
        assert (patched.status, reached) == (200, [("PATCH", item, 200)])
    for target, status in (("/cities/999999", 404), ("/cities?limit=0", 422)):
        for _ in range(2):
            reply, reached = shared_origin.asked(lambda t=target: shared.request("GET", t))
            assert (reply.status, reply.header("Cache-Control")) == (status, "no-store")
            assert reached == [("GET", target.split("?")[0], status)]
    health, reached = shared_origin.asked(lambda: shared.request("GET", "/health"))
    assert (health.header("Cache-Control"), reached) == ("no-store", [("GET", "/health", 200)])
    deleted = shared.request("DELETE", item)
    assert deleted.status == 200
    gone = [shared_origin.asked(lambda: shared.request("DELETE", item)) for _ in range(2)]
    assert [(reply.status, seen) for reply, seen in gone] == [(404, [("DELETE", item, 404)])] * 2


# Last: it stops the database (`running` restarts it for any test after it).
def test_health_after_the_database_stops_is_not_served_from_the_cache(running, cache):
    assert cache.request("GET", "/health").status == 200
    running.stop()
    down = cache.request("GET", "/health")
    assert down.status == 503
    assert down.json["error"]["code"] == "service_unavailable"
    assert down.header("Retry-After")
