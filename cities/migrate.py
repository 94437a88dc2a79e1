"""Versioned, forward-only schema migrations, applied at deploy time, never by the API.

Files are `migrations/NNNN_description.sql`. Each applies in its own transaction together with
its row in `schema_migrations`, so a failed file leaves no trace and the next run retries it.
Concurrent runs are serialized by a transaction-level advisory lock taken inside each of those
transactions, after which the run re-checks whether another applied the file meanwhile: two
deploys at once both succeed and each file applies once. No lock outlives its transaction, so
this holds through a transaction pooler too (which hands each transaction to any server, so a
session-level lock could be taken on one and "released" on another). Migrations still prefer
the direct endpoint: a long migration should not hold a pooled server.
A file changed after it was applied is refused: the database would no longer match the code.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2

from . import db

_IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE

log = logging.getLogger("cities")

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# An arbitrary constant shared by every run; pg_advisory_xact_lock takes a bigint.
LOCK_ID = 7_243_110_515_020_001
_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    """A migration cannot be applied; the message says what to do."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Migration files in version order; line endings are normalized before checksumming."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_description.sql")
        sql = path.read_text(encoding="utf-8").replace("\r\n", "\n")
        checksum = hashlib.sha256(sql.encode("utf-8")).hexdigest()
        migrations.append(Migration(int(match[1]), path.name, sql, checksum))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return migrations


@functools.lru_cache
def latest_version(directory: Path = MIGRATIONS_DIR) -> int:
    """The newest version shipped; read once per process (/health asks on every call)."""
    return max((m.version for m in load_migrations(directory)), default=0)


def current_version(conn: Any) -> int:
    """The newest applied version; raises UndefinedTable when migrate never ran."""
    with conn.cursor() as cur:
        cur.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        return cur.fetchone()[0]


def migrate(
    url: str,
    *,
    connect_timeout: int = 10,
    connect_budget: float = 0.0,
    directory: Path = MIGRATIONS_DIR,
) -> dict[str, Any]:
    """Apply pending migrations; returns what was applied and the resulting version.

    Every failure, the driver's included, is a MigrationError saying what failed.
    """
    migrations = load_migrations(directory)
    try:
        conn = db.connect(url, connect_timeout, "cities-migrate", budget=connect_budget)
    except psycopg2.Error as exc:
        raise MigrationError(f"cannot connect to the database: {_first_line(exc)}") from exc
    try:
        conn.autocommit = True  # every transaction below is explicit, lock included
        return _apply_pending(conn, migrations)
    except psycopg2.Error as exc:
        raise MigrationError(f"migrations failed: {_first_line(exc)}") from exc
    finally:
        conn.close()


def _first_line(exc: psycopg2.Error) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


@contextlib.contextmanager
def _locked_transaction(conn: Any) -> Iterator[Any]:
    """A transaction holding the migrations' lock until it ends: committed when the block ends
    normally (unless it ended the transaction itself), rolled back when it raises."""
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        try:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
            yield cur
        except BaseException:
            if not conn.closed:
                with contextlib.suppress(psycopg2.Error):
                    cur.execute("ROLLBACK")
            raise
        if conn.get_transaction_status() != _IDLE:
            cur.execute("COMMIT")


def _check_unchanged(migration: Migration, name: str, checksum: str) -> None:
    if checksum != migration.checksum:
        raise MigrationError(
            f"{migration.name} was changed after it was applied as {name}; "
            "applied migrations are immutable: revert the change and add a new file"
        )


def _apply_pending(conn: Any, migrations: list[Migration]) -> dict[str, Any]:
    with _locked_transaction(conn) as cur:
        cur.execute(_CREATE_LEDGER)
        cur.execute("SELECT version, name, checksum FROM schema_migrations")
        applied = {version: (name, checksum) for version, name, checksum in cur.fetchall()}
    for migration in migrations:
        if migration.version in applied:
            _check_unchanged(migration, *applied[migration.version])
    newly_applied = [
        migration for migration in migrations
        if migration.version not in applied and _apply(conn, migration)
    ]
    return {
        "applied": [m.name for m in newly_applied],
        "already_applied": len(applied),
        "version": current_version(conn),
    }


def _apply(conn: Any, migration: Migration) -> bool:
    """Apply one file in its own locked transaction; False when another run applied it first."""
    with _locked_transaction(conn) as cur:
        cur.execute(
            "SELECT name, checksum FROM schema_migrations WHERE version = %s", (migration.version,)
        )
        row = cur.fetchone()
        if row is not None:
            _check_unchanged(migration, *row)
            return False
        log.info("applying migration %s", migration.name)
        del conn.notices[:]  # from here on, what this migration reports
        try:
            cur.execute(migration.sql)
            cur.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
        except psycopg2.Error as exc:
            raise MigrationError(f"{migration.name} failed and was rolled back: {exc}") from exc
    for notice in conn.notices:  # what a migration reports (RAISE NOTICE/WARNING)
        log.warning("%s: %s", migration.name, notice.strip())
    del conn.notices[:]
    return True
