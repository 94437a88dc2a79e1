"""`python -m cities`: migrate and serve locally, on DATABASE_URL or the embedded PostgreSQL."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg2

from cities.db.migrate import migrate
from tests.support.pg_cluster import free_port

REPO = Path(__file__).resolve().parents[2]


def cli_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    return {**env, "PYTHONPATH": str(REPO), **overrides}


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cities", *args], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_migrate_uses_database_url(empty_database_url):
    first = run_cli("migrate", env=cli_env(DATABASE_URL=empty_database_url))
    assert first.returncode == 0, first.stderr
    assert "0001_create_city.sql" in first.stdout
    second = run_cli("migrate", env=cli_env(DATABASE_URL=empty_database_url))
    assert "nothing new" in second.stdout


def test_migrate_reports_a_refused_migration(empty_database_url):
    migrate(empty_database_url)
    conn = psycopg2.connect(empty_database_url)
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE schema_migrations SET checksum = 'tampered'")
    conn.close()
    result = run_cli("migrate", env=cli_env(DATABASE_URL=empty_database_url))
    assert result.returncode == 1
    assert "migration failed" in result.stderr
    assert "was changed after it was applied" in result.stderr


def serve_and_call(cwd: Path, env: dict[str, str]) -> tuple[str, list[tuple[int, object]]]:
    """Start `python -m cities serve`, create and list a city over real HTTP, then stop it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cities", "serve", "--port", str(port)],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/openapi.json", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.stdout.read()) from None
                time.sleep(0.2)
        request = urllib.request.Request(
            f"{base}/cities", data=json.dumps({"name": "Leeds", "state": "Yorkshire"}).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        results = []
        with urllib.request.urlopen(request, timeout=10) as resp:
            results.append((resp.status, json.load(resp)))
        with urllib.request.urlopen(f"{base}/cities", timeout=10) as resp:
            results.append((resp.status, json.load(resp)))
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    return output, results


def test_serve_on_database_url(empty_database_url, tmp_path):
    output, results = serve_and_call(tmp_path, cli_env(DATABASE_URL=empty_database_url))
    assert "database: the database from DATABASE_URL" in output
    assert "serving the API at http://127.0.0.1:" in output
    assert "\x1b[" not in output  # a log file gets no terminal colour codes
    # One line per request: the app's JSON line, not also Werkzeug's access line.
    about_cities = [line for line in output.splitlines() if "/cities" in line]
    assert len(about_cities) == 2, output
    assert all(line.startswith('INFO cities: {"event":"request"') for line in about_cities)
    (created_status, created), (list_status, listed) = results
    assert (created_status, list_status) == (201, 200)
    assert listed == [created]


def test_serve_without_database_url_starts_the_embedded_postgres(tmp_path):
    output, results = serve_and_call(tmp_path, cli_env())
    assert "embedded PostgreSQL 18" in output
    assert "0001_create_city.sql" in output
    assert [status for status, _ in results] == [201, 200]
    assert (tmp_path / ".data" / "pgdata" / "PG_VERSION").is_file()


def test_serve_on_a_busy_port_says_so_before_starting_anything(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "cities", "serve", "--port", str(port)], cwd=tmp_path,
            env=cli_env(), capture_output=True, text=True, timeout=60, check=False,
        )
    assert result.returncode == 1
    assert result.stderr.startswith(f"cannot serve on 127.0.0.1:{port}: Address already in use")
    assert f"make run PORT={port + 1}" in result.stderr
    assert "serving" not in result.stdout and "database:" not in result.stdout
    assert not (tmp_path / ".data").exists()  # no embedded server was started


def test_migrate_reports_an_unreachable_database_without_a_traceback():
    url = "postgresql://nobody:pw@127.0.0.1:9/nowhere?connect_timeout=1"
    result = run_cli("migrate", env=cli_env(DATABASE_URL=url, DB_CONNECT_BUDGET="0.5"))
    assert result.returncode == 1
    assert "migration failed: MigrationError: cannot connect to the database" in result.stderr
    assert "Traceback" not in result.stderr
