"""The zip under AWS's own runtime stack: the Runtime Interface Emulator and awslambdaric.

The unpacked `dist/cities.zip` runs as Lambda runs it (the RIE drives awslambdaric on the
runtime's Python, tests/support/rie.py) against a real PostgreSQL: the migrate function builds
the schema, every route answers through real HTTP API events POSTed to the invoke endpoint, each
log line carries Lambda's request id, a zip built wrong fails init the way Lambda reports it,
and a function timeout resets the runtime so the next invoke is served by a fresh one.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from cities import create_app
from cities.ops.config import MAX_STATEMENT_TIMEOUT_MS
from tests.conftest import served_operations
from tests.deploy.test_artifact import BUNDLE_URL, RUNTIME, RUNTIME_PYTHON, build_zip
from tests.support import rie
from tests.support.lambda_events import http_api_event, to_reply

pytestmark = pytest.mark.skipif(
    RUNTIME_PYTHON is None,
    reason=f"no Python {RUNTIME} interpreter installed to run the zip under Lambda's emulator",
)
API_KEY = "rie-key"
AUTH = {"authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def client_dir() -> Path:
    try:
        rie.emulator("x86_64")
        return rie.runtime_client(RUNTIME, "x86_64")
    except rie.Unavailable as exc:
        pytest.skip(f"Lambda's emulator or runtime client cannot be had here: {exc}")


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip unpacked into a folder of its own, standing for /var/task."""
    target = tmp_path_factory.mktemp("var_task")
    shutil.unpack_archive(build_zip(), target, "zip")
    return target


def _env(url: str, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": url, "API_KEYS": API_KEY, "LOG_LEVEL": "INFO",
            "DB_CONNECT_TIMEOUT": "5", **extra}


@pytest.fixture
def start(task: Path, client_dir: Path, tmp_path: Path):
    """Start the emulator on the unpacked zip: `start(handler, env, timeout_s=25)`."""
    started = itertools.count()

    def run(handler: str, env: dict[str, str], *, task_dir: Path = task, timeout_s: int = 25):
        log = tmp_path / f"{handler}-{next(started)}.log"
        return rie.running(task_dir, RUNTIME_PYTHON, handler, env, runtime_client_dir=client_dir,
                           timeout_s=timeout_s, log=log)
    return run


def _route_events(city_id: int) -> list[tuple[tuple[str, str], dict, int]]:
    """((OpenAPI path, method), event, expected status) for every operation, in a valid order."""
    item = f"/cities/{city_id}"
    return [
        (("/health", "GET"), http_api_event("GET", "/health"), 200),
        (("/openapi.json", "GET"), http_api_event("GET", "/openapi.json"), 200),
        (("/cities/{id}", "GET"), http_api_event("GET", item), 200),
        (("/cities", "GET"), http_api_event("GET", "/cities", query={"limit": "5"}), 200),
        (("/cities/{id}", "PUT"), http_api_event(
            "PUT", item, {"name": "Tulsa", "state": "OK"}, headers=AUTH), 200),
        (("/cities/{id}", "PATCH"), http_api_event(
            "PATCH", item, {"state": "Oklahoma"}, headers=AUTH), 200),
        (("/cities/{id}", "DELETE"), http_api_event("DELETE", item, headers=AUTH), 200),
        (("/docs", "GET"), http_api_event("GET", "/docs", headers={"accept": "text/html"}), 200),
        ((BUNDLE_URL, "GET"), http_api_event("GET", BUNDLE_URL), 200),
        (("/cities/{id}", "GET"), http_api_event("GET", item), 404),
    ]


def test_zip_migrates_and_serves_every_route_under_lambdas_runtime(start, databases) -> None:
    url = databases.create()  # empty: the zip's own migrate function builds the schema
    with start("handler.migrate", _env(url)) as migrate:
        first, again = migrate.invoke({}), migrate.invoke({})
    assert first.status == 200 and first.payload["applied"], first.payload
    assert again.payload["applied"] == []

    with start("handler.api", _env(url)) as api:
        created = api.invoke(http_api_event("POST", "/cities", {"name": "Tulsa", "state": "OK"},
                                            headers=AUTH))
        assert created.status == 200, created.payload
        reply = to_reply(created.payload)
        assert reply.status == 201 and reply.json["name"] == "Tulsa"
        covered, invokes = {("/cities", "POST")}, 1
        for operation, event, status in _route_events(reply.json["id"]):
            got = api.invoke(event)
            assert got.status == 200 and to_reply(got.payload).status == status, (operation, got)
            covered.add(operation)
            invokes += 1
        logs = api.logs()
        ids = api.request_ids()

    assert covered >= served_operations(create_app({"DATABASE_URL": url}))
    # One request log line per invoke, each with the id Lambda gave that invoke.
    logged = [json.loads(line.split("\t")[-1])["request_id"]
              for line in logs.splitlines() if '"event":"request"' in line]
    assert len(ids) == invokes and logged == ids
    assert url not in logs and "Traceback" not in logs


def test_a_zip_built_for_another_platform_fails_init_as_lambda_reports_it(
    start, task: Path, tmp_path: Path, databases
) -> None:
    """The classic `No module named 'psycopg2._psycopg'`: the extension does not load."""
    broken = tmp_path / "var_task"
    shutil.copytree(task, broken)
    for extension in (broken / "psycopg2").glob("_psycopg.*.so"):
        extension.unlink()
    url = databases.create()
    with start("handler.api", _env(url), task_dir=broken) as api:
        failed = api.invoke(http_api_event("GET", "/health"))
        logs = api.logs()
    # Lambda's init-error payload; the emulator answers it with 502 where the Invoke API answers
    # 200 and `X-Amz-Function-Error: Unhandled` (and API Gateway a 500).
    assert failed.status == 502, failed
    assert failed.payload == {
        "errorMessage": "Unable to import module 'handler': No module named 'psycopg2._psycopg'",
        "errorType": "Runtime.ImportModuleError", "requestId": "", "stackTrace": [],
    }
    assert re.search(r"INIT RTDONE\(status: error\)|Init failed", logs), logs
    assert url not in json.dumps(failed.payload) and url not in logs


def _cold_invoke_ms(logs: str) -> float:
    """The first invoke's billed-time measure (init included): the REPORT line's Duration."""
    return float(re.search(r"^REPORT RequestId: \S+\s+(?:Init Duration: \S+ ms\s+)?"
                           r"Duration: ([\d.]+) ms", logs, re.M).group(1))


@pytest.fixture
def locked_city_table(databases) -> Iterator[str]:
    """A migrated database whose city table another session holds locked throughout."""
    url = databases.create()
    from cities.db.migrate import migrate

    migrate(url)
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("LOCK TABLE city IN ACCESS EXCLUSIVE MODE")
        yield url
    finally:
        conn.rollback()
        conn.close()


def test_a_timed_out_invoke_resets_the_runtime_and_the_next_one_is_served(
    start, databases, locked_city_table
) -> None:
    url = locked_city_table
    # The function timeout leaves the next (cold) invoke five times what a cold invoke took
    # here, and must end the blocked statement's wait before the app's statement cap does.
    with start("handler.api", _env(url)) as probe:
        assert probe.invoke(http_api_event("GET", "/health")).status == 200
        timeout_s = max(2, math.ceil(5 * _cold_invoke_ms(probe.logs()) / 1000))
    if timeout_s * 1000 >= MAX_STATEMENT_TIMEOUT_MS:
        pytest.skip(f"a cold invoke took {timeout_s / 5:.1f} s here: no function timeout both "
                    "lets it run and ends before the statement cap")
    env = _env(url, DB_STATEMENT_TIMEOUT_MS=str(MAX_STATEMENT_TIMEOUT_MS))
    with start("handler.api", env, timeout_s=timeout_s) as api:
        blocked = api.invoke(http_api_event("GET", "/cities"))
        # Lambda's message (the Invoke API wraps it as errorType Sandbox.Timedout; API Gateway
        # answers 503). The app never got to answer, so nothing it holds survives the reset.
        assert blocked.payload == f"Task timed out after {timeout_s}.00 seconds", blocked
        served = api.invoke(http_api_event("GET", "/health"))
        logs = api.logs()
    assert to_reply(served.payload).status == 200
    assert "Reset initiated: Timeout" in logs
    # A new runtime process served it: init ran again after the reset.
    assert len(re.findall(r"INIT START", logs)) == 2, logs


def test_a_warm_container_with_reuse_reads_items_on_its_kept_connection(start, databases) -> None:
    """DB_CONNECTION_REUSE under Lambda's runtime: invokes of one warm container share its kept
    connection, the item GETs served on it through the read-ahead middleware that reuse installs
    (cities/http/early_read.py; what it sends is checked in tests/db/test_connection_reuse.py)."""
    url = databases.create()
    with start("handler.migrate", _env(url)) as migrate:
        assert migrate.invoke({}).status == 200
    with start("handler.api", _env(url, DB_CONNECTION_REUSE="1")) as api:
        created = to_reply(api.invoke(http_api_event(
            "POST", "/cities", {"name": "Ogdenville", "state": "OR"}, headers=AUTH)).payload)
        assert created.status == 201
        item = f"/cities/{created.json['id']}"
        for _ in range(3):
            reply = to_reply(api.invoke(http_api_event("GET", item)).payload)
            assert reply.status == 200 and reply.json == created.json
        logs = api.logs()
    lines = [json.loads(line.split("\t")[-1]) for line in logs.splitlines()
             if '"event":"request"' in line]
    assert [(e["method"], e["db_connection"]) for e in lines] == [
        ("POST", "opened"), ("GET", "reused"), ("GET", "reused"), ("GET", "reused")]
    assert "Traceback" not in logs
