"""`make offline`: serverless-offline emulates the HTTP API from serverless.yml and runs
`handler.api` against a real local PostgreSQL (here: a fresh test database, migrated by the
wrapper as a deploy's migrate function would)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.test_artifact import build_zip
from tests.support.pg_cluster import free_port

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 90


def call(method: str, url: str, body: dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers=headers or {}
    )
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, dict(reply.headers), reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


@pytest.fixture
def offline(node, databases, tmp_path: Path) -> Iterator[str]:
    yield from run_offline(databases.create(), tmp_path)


def run_offline(database_url: str, tmp_path: Path) -> Iterator[str]:
    """The emulator on free loopback ports, API key `offline-key`; its URL while the generator
    is suspended, then always stopped (its whole process group). Needs Node (the `node` fixture)."""
    build_zip()  # the emulator runs the packaged artifact, as `make offline` builds it
    subprocess.run(["make", "--no-print-directory", "node_modules/.installed"], cwd=ROOT,
                   check=True)
    http_port, lambda_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(DATABASE_URL=database_url, API_KEYS="offline-key",
               SLS_TELEMETRY_DISABLED="1", SLS_NOTIFICATIONS_MODE="off")
    log = (tmp_path / "offline.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "deploy/offline.py", "--", "npx", "--no-install", "osls", "offline",
         "--stage", "local", "--host", "127.0.0.1", "--httpPort", str(http_port),
         "--lambdaPort", str(lambda_port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, (tmp_path / "offline.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", http_port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "offline.log").read_text()
                time.sleep(0.05)  # a look costs nothing; the wait is the emulator's start
        yield base
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def test_offline_serves_the_api_and_cors_like_the_http_api(offline: str) -> None:
    status, _, body = call("GET", f"{offline}/health")
    assert status == 200 and json.loads(body).get("status") == "ok", body

    status, _, body = call("POST", f"{offline}/cities", {"name": "Boise", "state": "Idaho"})
    assert status == 401 and json.loads(body)["error"]["code"] == "unauthorized"
    status, headers, body = call("POST", f"{offline}/cities", {"name": "Boise", "state": "Idaho"},
                                 {"Authorization": "Bearer offline-key"})
    assert status == 201, body
    created = json.loads(body)
    # Generated URLs are followable: plain http, as the emulator serves (not serverless-wsgi's
    # default https).
    assert headers["location"] == f"{offline}/cities/{created['id']}"
    status, _, body = call("GET", headers["location"])
    assert status == 200 and json.loads(body) == created
    call("POST", f"{offline}/cities", {"name": "Nampa", "state": "Idaho"},
         {"Authorization": "Bearer offline-key"})
    status, headers, _ = call("GET", f"{offline}/cities?limit=1")
    next_url = headers["link"].split(">")[0].lstrip("<")
    assert next_url.startswith(f"{offline}/cities?"), headers["link"]
    status, _, body = call("GET", next_url)
    assert status == 200 and [c["name"] for c in json.loads(body)] == ["Nampa"]

    status, _, body = call("GET", f"{offline}/cities?state=idaho")
    assert status == 200 and [c["name"] for c in json.loads(body)] == ["Boise", "Nampa"]
    status, _, body = call("GET", f"{offline}/nowhere")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"

    # The preflight is answered by the (emulated) HTTP API from serverless.yml's CORS settings.
    status, headers, _ = call("OPTIONS", f"{offline}/cities", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert status == 204
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered["access-control-allow-origin"] in ("*", "https://app.example")
    assert "POST" in lowered["access-control-allow-methods"]


def test_sigterm_stops_the_emulator_then_the_wrapper(databases, tmp_path: Path) -> None:
    """A process manager's stop reaches the emulator's CLI (which npx runs as a child and does not
    pass signals to), and the wrapper exits after it (so its exit handlers stop an embedded
    server)."""
    cli = tmp_path / "cli"
    cli_code = ("import pathlib, signal, sys, time\n"
                f"marker = pathlib.Path({str(cli)!r})\n"
                "signal.signal(signal.SIGTERM, lambda *_: (marker.write_text('stopped'),"
                " sys.exit(0)))\n"
                "marker.write_text('running')\n"
                "time.sleep(60)\n")
    npx_like = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {cli_code!r}])"
    env = {**os.environ, "DATABASE_URL": databases.create()}
    process = subprocess.Popen([sys.executable, "deploy/offline.py", "--", sys.executable, "-c",
                                npx_like], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not cli.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM  # as the emulator ended
    finally:
        process.kill()
    deadline = time.monotonic() + 10
    while cli.read_text() != "stopped":
        assert time.monotonic() < deadline, "the CLI under npx was left running"
        time.sleep(0.1)


def test_stopping_it_leaves_no_unpacked_code_and_prints_no_traceback(node, databases, tmp_path):
    """Ctrl-C (SIGINT to the terminal's whole process group) stops it quietly and removes the
    code it unpacked, which `make lint` would otherwise report as ~1,290 errors."""
    runs = run_offline(databases.create(), tmp_path)
    base = next(runs)
    assert call("GET", f"{base}/health")[0] == 200  # a runner started: the zip is unpacked
    runs.close()
    log = (tmp_path / "offline.log").read_text()
    assert not (ROOT / ".serverless-offline").exists(), log
    assert "Traceback" not in log and "ENOTEMPTY" not in log, log
