"""Versioned, forward-only schema migrations, applied at deploy time, never by the API.

Files are `migrations/NNNN_description.sql`. Each applies in its own transaction together with
its row in `schema_migrations`, so a failed file leaves no trace and the next run retries it.
A session advisory lock serializes concurrent runs (two deploys at once both succeed, each file
applies once), which is why migrations want a direct endpoint rather than a transaction pooler.
A file changed after it was applied is refused: the database would no longer match the code.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2

from . import db

log = logging.getLogger("cities")

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# An arbitrary constant shared by every run; pg_advisory_lock takes a bigint.
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
    """Apply pending migrations; returns what was applied and the resulting version."""
    migrations = load_migrations(directory)
    conn = db.connect(url, connect_timeout, "cities-migrate", budget=connect_budget)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
        try:
            return _apply_pending(conn, migrations)
        finally:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))
    finally:
        conn.close()


def _apply_pending(conn: Any, migrations: list[Migration]) -> dict[str, Any]:
    with conn.cursor() as cur:
        cur.execute(_CREATE_LEDGER)
        cur.execute("SELECT version, name, checksum FROM schema_migrations")
        applied = {version: (name, checksum) for version, name, checksum in cur.fetchall()}
    for migration in migrations:
        if migration.version in applied:
            name, checksum = applied[migration.version]
            if checksum != migration.checksum:
                raise MigrationError(
                    f"{migration.name} was changed after it was applied as {name}; "
                    "applied migrations are immutable: revert the change and add a new file"
                )
    newly_applied = []
    for migration in migrations:
        if migration.version in applied:
            continue
        log.info("applying migration %s", migration.name)
        del conn.notices[:]  # from here on, what this migration reports
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            try:
                cur.execute(migration.sql)
                cur.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
            except psycopg2.Error as exc:
                cur.execute("ROLLBACK")
                raise MigrationError(f"{migration.name} failed and was rolled back: {exc}") from exc
            cur.execute("COMMIT")
        for notice in conn.notices:  # what a migration reports (RAISE NOTICE/WARNING)
            log.warning("%s: %s", migration.name, notice.strip())
        del conn.notices[:]
        newly_applied.append(migration)
    return {
        "applied": [m.name for m in newly_applied],
        "already_applied": len(applied),
        "version": max([*applied, *(m.version for m in newly_applied)], default=0),
    }
