"""The benchmark's throwaway PostgreSQL, reached like a hosted one: TCP on 127.0.0.1, SCRAM.

The test suite's pgserver server talks over a Unix socket with trust auth, which hides what a
Lambda pays on every connect (TCP, then the SCRAM exchange). This builds a cluster with `initdb`:
from the system's PostgreSQL when `pg_config` names one (its contrib modules include pg_trgm,
which the scale section wants), else from the binaries bundled in the pgserver wheel
(`PG_BINDIR` overrides both). It never touches a server already running on the machine: it picks
a free port and its own data directory, and removes both when stopped. Unlike the tests'
cluster it keeps fsync on, so write timings include a real commit.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
from psycopg2.extensions import make_dsn

# initdb and postgres refuse to run as root; pgserver creates this unprivileged user when root.
SYSTEM_USER = "pgserver"


def find_bindir() -> Path:
    """`PG_BINDIR`, else the system PostgreSQL (`pg_config --bindir`), else pgserver's."""
    explicit = os.environ.get("PG_BINDIR")
    if explicit:
        return Path(explicit)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        bindir = Path(out.stdout.strip())
        if out.returncode == 0 and (bindir / "initdb").exists():
            return bindir
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """One PostgreSQL server in a temporary directory, with a `postgres` superuser password."""

    def __init__(self, bindir: Path | None = None, settings: dict[str, str] | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.settings = settings or {}
        self.password = secrets.token_urlsafe(16)
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="cities-pg-"))
        self.data = self.root / "data"
        self.logfile = self.root / "server.log"
        self._user = SYSTEM_USER if os.geteuid() == 0 else None

    # -- processes -------------------------------------------------------------------------
    def _run(self, *args: str) -> str:
        out = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            user=self._user,
            check=False,
            timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {out.stderr.strip() or out.stdout.strip()}")
        return out.stdout

    def _prepare_root(self) -> None:
        if self._user is None:
            return
        import pwd

        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(self._user)
        ensure_prefix_permissions(self.root)
        if "site-packages" in str(self.bindir):
            ensure_prefix_permissions(self.bindir)
        entry = pwd.getpwnam(self._user)
        os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def start(self) -> Cluster:
        """initdb (SCRAM for TCP, password for `postgres`) and start; returns self."""
        self._prepare_root()
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._user is not None:
            shutil.chown(pwfile, self._user)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--no-sync",
            "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
        )  # fmt: skip
        pwfile.unlink()
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "password_encryption": "scram-sha-256",
            **self.settings,
        }
        conf = "".join(f"{key} = '{value}'\n" for key, value in options.items())
        with (self.data / "postgresql.auto.conf").open("a") as f:
            f.write(conf)
        self._pg_ctl("start")
        return self

    def _pg_ctl(self, action: str, mode: str = "fast") -> None:
        args = ["pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", mode]
        if action != "stop":
            args += ["-l", str(self.logfile)]
        self._run(*args, action)

    def restart(self) -> None:
        """A server restart: every backend is terminated, then the server accepts again."""
        self._pg_ctl("restart")

    def stop(self) -> None:
        """Stop the server (immediately) and remove its directory."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._pg_ctl("stop", mode="immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- clients ---------------------------------------------------------------------------
    def url(self, dbname: str = "postgres") -> str:
        """A TCP URL with the password, as a hosted database's would be."""
        return make_dsn(
            host="127.0.0.1", port=self.port, user="postgres", password=self.password,
            dbname=dbname, sslmode="disable",
        )  # fmt: skip

    def create_database(self, name: str) -> str:
        conn = psycopg2.connect(self.url())
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg2.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
