"""A real PgBouncer in transaction pool mode in front of a throwaway cluster
(tests/support/pg_cluster.py).

This is the production path on Neon (its `-pooler` endpoint is PgBouncer in transaction mode),
so the tests and the benchmark run through one: Debian's `pgbouncer` package. PgBouncer refuses
to run as root; it runs as the cluster's system user. Clients authenticate with SCRAM when the
cluster has a password, as on Neon. Its `auth_file` holds the plain password unless told to keep
the server's SCRAM verifier (`verifier=True`), as Neon's pooler does: with a plain password
PgBouncer derives a verifier (4096 rounds of PBKDF2) on every login, which the benchmark's
fan-in must not count as the cost of a login.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.pg_cluster import Cluster, free_port, ssl_capable_bindir

SEARCH_PATH = "/usr/sbin:/usr/local/sbin:/usr/bin:/usr/local/bin"


def pgbouncer_binary() -> str | None:
    """Debian installs pgbouncer in /usr/sbin, often not on a non-root PATH."""
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path=SEARCH_PATH)


class PgBouncer:
    """PgBouncer on a free port of 127.0.0.1, pooling every database of `cluster`."""

    def __init__(self, cluster: Cluster, root: Path, *, pool_size: int = 10,
                 max_client_conn: int = 1000, verifier: bool = False, **extra: object) -> None:
        """`extra` settings add to or override the [pgbouncer] section (e.g. server_login_retry).

        `verifier`: keep the role's SCRAM verifier, read from the running cluster's pg_authid
        (the same salt and iterations, so PgBouncer logs in to the server with the client's
        proof), instead of the plain password.
        """
        binary = pgbouncer_binary()
        if binary is None:
            raise RuntimeError("pgbouncer is not installed")
        self.binary = binary
        self.cluster = cluster
        self.pool_size = pool_size
        self.port = free_port()
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.log = root / "pgbouncer.log"
        password = cluster.password
        if password and verifier:
            password = cluster.scram_verifier()
        users = f'"postgres" "{password}"\n' if password else '"postgres" ""\n'
        (root / "userlist.txt").write_text(users)
        settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": self.port,
            "unix_socket_dir": "",
            "auth_type": "scram-sha-256" if password else "trust",
            "auth_file": root / "userlist.txt",
            "admin_users": "postgres",
            "pool_mode": "transaction",
            "default_pool_size": pool_size,
            "max_client_conn": max_client_conn,
            "logfile": self.log,
            "pidfile": root / "pgbouncer.pid",
            "log_connections": 1,
            "log_disconnections": 1,
            **extra,
        }
        (root / "pgbouncer.ini").write_text(
            f"[databases]\n* = host=127.0.0.1 port={cluster.port}\n\n[pgbouncer]\n"
            + "".join(f"{key} = {value}\n" for key, value in settings.items())
        )
        if self.user:
            for path in (root, *root.iterdir()):
                shutil.chown(path, self.user)
        self.process: subprocess.Popen | None = None

    @property
    def user(self) -> str | None:
        """Who runs it: the cluster's system user; as root without one, `postgres` if it exists."""
        if self.cluster.user or os.geteuid() != 0:
            return self.cluster.user
        try:
            return pwd.getpwnam("postgres").pw_name
        except KeyError:
            raise RuntimeError("pgbouncer refuses to run as root; no other user found") from None

    def start(self) -> None:
        # Its console output goes to a file: a pipe nobody reads would fill and block it.
        with (self.root / "console.log").open("ab") as console:
            self.process = subprocess.Popen(
                [self.binary, str(self.root / "pgbouncer.ini")], user=self.user,
                cwd="/", stdout=console, stderr=console,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                console_text = (self.root / "console.log").read_text()[-2000:]
                raise RuntimeError(f"pgbouncer exited: {console_text}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("pgbouncer did not start listening")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def url(self, dbname: str = "postgres", **params: str) -> str:
        """The cluster's URL with the pooler's port: what Neon's `-pooler` host stands for."""
        return self.cluster.url(dbname, **params).replace(
            f":{self.cluster.port}/", f":{self.port}/"
        )

    def log_text(self) -> str:
        return self.log.read_text() if self.log.is_file() else ""


def pooled_cluster(root: Path, *, pool_size: int = 10, **extra: object) -> PgBouncer:
    """A started PostgreSQL with SCRAM (the system's binaries), migrated on its direct port,
    behind a started PgBouncer in transaction mode; skips the test where either is missing."""
    import pytest

    from cities.db.migrate import migrate

    if pgbouncer_binary() is None:
        pytest.skip("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    bindir = ssl_capable_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries from the system (pg_config --bindir) here")
    cluster = Cluster(root / "pg", password="pooled-secret", bindir=bindir)
    cluster.configure(max_connections="40")
    cluster.start()
    migrate(cluster.url())
    bouncer = PgBouncer(cluster, root / "bouncer", pool_size=pool_size, **extra)
    bouncer.start()
    return bouncer


def stop_pooled(bouncer: PgBouncer) -> None:
    """Stop the pooler and its cluster (which a test may have left stopped)."""
    bouncer.stop()
    with contextlib.suppress(RuntimeError):
        bouncer.cluster.stop("immediate")
