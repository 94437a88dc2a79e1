"""The embedded PostgreSQL of `make run` and `make test`: the production plan for `q`, old data
kept, and a server that never outlives the run that started it, however that run ended."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from cities.ops import embedded
from tests.conftest import run_sql
from tests.db.test_city_filters import list_with_plan
from tests.db.test_main import REPO, cli_env
from tests.support.pg_cluster import free_port

pytestmark = pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")),
                                reason="TEST_DATABASE_URL replaces the embedded server")


def test_a_local_q_search_uses_the_trigram_index_as_in_production(trgm_url):
    (version,) = run_sql(trgm_url, "SHOW server_version")[0]
    rows, plan = list_with_plan(
        trgm_url, "xotic",
        "TRUNCATE city",
        "INSERT INTO city (name, state) SELECT 'Town ' || n, 'S' FROM generate_series(1, 5000) n",
        "INSERT INTO city (name, state) VALUES ('Quixotic Falls', 'S')",
    )
    assert version.startswith(embedded.server_major() + ".")
    assert [row["name"] for row in rows] == ["Quixotic Falls"]
    assert "Bitmap Index Scan on city_name_trgm" in plan, plan


def test_a_data_folder_of_postgresql_16_is_moved_aside_untouched_with_a_message(tmp_path):
    old = tmp_path / ".data" / "pgdata"
    old.mkdir(parents=True)
    (old / "PG_VERSION").write_text("16\n")
    (old / "base").mkdir()
    (old / "base" / "rows").write_text("the user's data")

    result = subprocess.run([sys.executable, "-m", "cities", "migrate"], cwd=tmp_path,
                            env=cli_env(), capture_output=True, text=True, timeout=120,
                            check=False)

    assert result.returncode == 0, result.stderr
    (moved,) = (tmp_path / ".data").glob("pgdata-pg16-*")
    assert (moved / "base" / "rows").read_text() == "the user's data"
    assert (moved / "PG_VERSION").read_text() == "16\n"
    assert f"was moved, untouched, to {moved}" in result.stderr
    assert "Local data from PostgreSQL 16" in result.stderr and f"rm -r {moved}" in result.stderr
    assert "Traceback" not in result.stderr
    assert (old / "PG_VERSION").read_text().strip() == embedded.server_major()
    assert "0001_create_city.sql" in result.stdout


def test_a_folder_of_the_current_version_is_left_where_it_is(tmp_path):
    data = tmp_path / "pgdata"
    data.mkdir()
    (data / "PG_VERSION").write_text(embedded.server_major() + "\n")
    assert embedded.set_aside_other_major(data, embedded.server_major()) is None
    assert embedded.set_aside_other_major(tmp_path / "absent", embedded.server_major()) is None
    assert list(tmp_path.iterdir()) == [data]


def test_handles_of_exited_processes_are_forgotten(tmp_path):
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                            capture_output=True, text=True, check=True)
    dead = int(exited.stdout)
    (tmp_path / embedded.HANDLES).write_text(json.dumps([dead, os.getpid()]))
    assert embedded.forget_dead_handles(tmp_path) == [os.getpid()]
    assert json.loads((tmp_path / embedded.HANDLES).read_text()) == [os.getpid()]


# --- the server's life with `python -m cities serve` ---------------------------------------


def postgres_on(data: Path) -> list[psutil.Process]:
    """Running postgres processes whose command line names this data folder."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(data) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def gone(data: Path, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while postgres_on(data):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    """The data folder a run in tmp_path uses; a server a failed test left there is killed."""
    folder = (tmp_path / ".data" / "pgdata").resolve()
    yield folder
    for proc in postgres_on(folder):
        proc.kill()


def default_sigint() -> None:
    """Ctrl-C as in a terminal, even where the suite runs with SIGINT ignored (a background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ignored_sigint() -> None:
    """SIGINT ignored, as in every command a non-interactive shell starts in the background."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def serve(
    cwd: Path, *args: str, sigint: Callable[[], None] = default_sigint
) -> tuple[subprocess.Popen, str]:
    """`python -m cities serve` in `cwd` on a free port, once it answers; (process, base URL)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cities", "serve", "--port", str(port), *args],
                            cwd=cwd, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=sigint)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2).close()
            return proc, base
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(proc.communicate()[0]) from None
            time.sleep(0.2)


def stop(proc: subprocess.Popen, signum: int) -> str:
    proc.send_signal(signum)
    output, _ = proc.communicate(timeout=30)
    return output


def test_however_a_run_ends_no_server_outlives_it_and_the_next_run_starts(tmp_path, data):
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or a process manager's stop
        proc, _ = serve(tmp_path)
        assert postgres_on(data)
        stop(proc, signum)
        assert gone(data), f"postgres outlived a run stopped by {signum.name}"

    proc, _ = serve(tmp_path)
    server_pid = int((data / "postmaster.pid").read_text().split()[0])
    proc.kill()  # no exit handlers run: the server stays, and the dead pid in its handle list
    proc.wait(timeout=10)
    assert postgres_on(data)
    assert proc.pid in json.loads((data / embedded.HANDLES).read_text())

    proc, base = serve(tmp_path)
    assert int((data / "postmaster.pid").read_text().split()[0]) == server_pid  # taken over
    with urllib.request.urlopen(f"{base}/cities", timeout=10) as reply:
        assert reply.status == 200
    stop(proc, signal.SIGINT)
    assert gone(data), "the killed run's stale handle kept postgres running"


def test_a_reloading_run_in_the_background_stopped_as_make_stops_it_leaves_nothing(
    tmp_path, data
):
    """`make run` serves through a child (--reload). Started in the background, SIGINT is
    ignored; stopped, make passes its SIGTERM on and sends one more of its own. The child stops
    all the same, before the database does, and the port is free again."""
    proc, base = serve(tmp_path, "--reload", sigint=ignored_sigint)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)  # make's own SIGTERM follows the one it passed on
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert gone(data), "postgres outlived the run"
    with pytest.raises(OSError):  # no child left serving on the shared socket
        urllib.request.urlopen(f"{base}/health", timeout=2).close()


def answer(url: str) -> tuple[int, dict]:
    """(status, JSON body) of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def eventually(url: str, expected: tuple[int, dict], what: str) -> None:
    """Poll `url` until it answers `expected`: a restart takes as long as the machine needs."""
    deadline, seen = time.monotonic() + 60, None
    while True:
        try:
            seen = answer(url)
            if seen == expected:
                return
        except (OSError, ValueError) as exc:
            seen = exc
        assert time.monotonic() < deadline, f"{what}: {url} still answers {seen!r}"
        time.sleep(0.3)


def test_reload_serves_edited_code_and_outlives_a_typo_on_the_same_database(tmp_path, data):
    """`make run` passes --reload: an edit restarts the app; the embedded server stays. A typo
    saved leaves the server answering a 500 JSON error (pointing at the terminal, which names
    the file and line) rather than stopping; the next good save serves the new code."""
    shutil.copytree(REPO / "cities", tmp_path / "cities",
                    ignore=shutil.ignore_patterns("__pycache__"))
    module = tmp_path / "cities" / "http" / "meta_api.py"
    original = module.read_text()
    route = '\n\n@bp.get("/reloaded")\ndef reloaded() -> dict:\n    return {{"reloaded": {}}}\n'
    proc, base = serve(tmp_path, "--reload")
    try:
        server_pid = int((data / "postmaster.pid").read_text().split()[0])
        assert answer(f"{base}/reloaded")[0] == 404
        module.write_text(original + route.format(1))
        eventually(f"{base}/reloaded", (200, {"reloaded": 1}), "the edit was not picked up")

        module.write_text(original + "\n\ndef broken(:\n")
        eventually(f"{base}/health", (500, {"error": {
            "code": "internal_error",
            "message": "The server's code failed to load after an edit; the terminal running "
                       "it says where. It serves again after the next save that loads.",
        }}), "a typo stopped the server")
        assert proc.poll() is None
        assert int((data / "postmaster.pid").read_text().split()[0]) == server_pid

        module.write_text(original + route.format(2))
        eventually(f"{base}/reloaded", (200, {"reloaded": 2}), "the fix was not picked up")
        status, body = answer(f"{base}/health")
        assert status == 200, body
        assert int((data / "postmaster.pid").read_text().split()[0]) == server_pid
    finally:
        output = stop(proc, signal.SIGINT)
    assert "reloads on code changes" in output
    broken_line = len((original + "\n\ndef broken(:").splitlines())
    where = f"{module.resolve()}:{broken_line}: SyntaxError"
    assert f"the code failed to load: {where}" in output, output
    assert "Traceback" not in output, output
    assert proc.returncode == 0, output
    assert gone(data), output
