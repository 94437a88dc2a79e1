"""`make offline`: the service under serverless-offline, against a local PostgreSQL.

serverless-offline emulates the HTTP API and runs `handler.api` with the virtualenv's Python, so
the events, routing and CORS are the deployed ones while the code stays editable. The database is
DATABASE_URL (environment or `.env`) when set, else the embedded PostgreSQL of `make run`; this
process keeps that server alive while the emulator runs, and applies migrations first (a deploy
runs them through the migrate function). Ctrl-C or SIGTERM stops the emulator, then the server:
nothing is left running, and the code the emulator unpacked (`.serverless-offline/`) is removed
once its last runner has exited (its own clean-up races them and fails with ENOTEMPTY).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    """Run the command after `--` with DATABASE_URL set to a migrated local database."""
    command = argv[argv.index("--") + 1:] if "--" in argv else argv
    if not command:
        print("usage: offline.py -- COMMAND...", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    from cities.db.migrate import migrate
    from cities.ops import config

    # Until the emulator runs, SIGTERM exits through the exit handlers that stop the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    config.load_dotenv_if_present(ROOT / ".env")
    url = os.environ.get("DATABASE_URL")
    if not url:
        from cities.ops import embedded

        url = embedded.start(ROOT / embedded.DEFAULT_DATA_DIR)
        print(f"database: embedded PostgreSQL {embedded.server_major()} "
              f"(data in {embedded.DEFAULT_DATA_DIR}/)")
    else:
        print("database: DATABASE_URL")
    result = migrate(os.environ.get("MIGRATIONS_DATABASE_URL") or url)
    print(f"migrations: applied {result['applied'] or 'nothing new'}", flush=True)
    venv = Path(sys.executable).parent.parent
    env = {**os.environ, "DATABASE_URL": url, "VIRTUAL_ENV": str(venv)}
    # Its own process group: a terminal's Ctrl-C reaches this process only, and the emulator's
    # tree gets exactly one signal from here (a second one makes its runners print tracebacks).
    emulator = subprocess.Popen(command, cwd=ROOT, env=env, process_group=0)  # noqa: S603
    tree: list = []
    signal.signal(signal.SIGTERM, lambda signum, _: tree.extend(_signal_tree(emulator.pid, signum)))
    try:
        while True:
            try:
                code = emulator.wait()
                return 128 - code if code < 0 else code  # killed by a signal: the shell's way
            except KeyboardInterrupt:
                tree.extend(_signal_tree(emulator.pid, signal.SIGINT))
    finally:
        _remove_unpacked(tree)


def _remove_unpacked(tree: list) -> None:
    """Wait for the emulator's runners, then remove the code it unpacked for them."""
    import psutil

    _, alive = psutil.wait_procs(tree, timeout=30)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    shutil.rmtree(ROOT / ".serverless-offline", ignore_errors=True)


def _signal_tree(pid: int, signum: int) -> list:
    """Signal a process and its descendants (npx does not pass a SIGTERM on to the CLI it
    runs); the processes signalled, to wait for."""
    import psutil

    try:
        parent = psutil.Process(pid)
        processes = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signum)
    return processes


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
