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

Given a deadline (the migrate function's, a few seconds before Lambda kills it), a run stops
there: the running statement is cancelled, its transaction rolled back, and no later statement
or file starts, so a run that raised DeadlineReached commits nothing afterwards and what it
says it applied is what the database holds. Each transaction has a `lock_timeout`, so a table
another session holds fails the file clearly instead of queueing the API behind it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors

from cities.db import connection as db

_IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE

log = logging.getLogger("cities")

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# An arbitrary constant shared by every run; pg_advisory_xact_lock takes a bigint.
LOCK_ID = 7_243_110_515_020_001
# The longest a migration waits for a lock another session holds. While it waits, every query on
# that table queues behind it, so this matches the API's default statement timeout (5 s): API
# requests stuck behind the wait give up no later than they would anyway. With a deadline, at
# most half the time left, so a lock wait ends as a clear lock timeout, not as the deadline's
# cancel, and leaves time for the work after the lock is granted.
LOCK_TIMEOUT_S = 5.0
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


class DeadlineReached(MigrationError):
    """The run stopped at its deadline; nothing it did not report as applied was committed."""


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
    deadline: float | None = None,
) -> dict[str, Any]:
    """Apply pending migrations; returns what was applied and the resulting version.

    `deadline` (a `time.monotonic()` value) is when the run must have stopped: past it, the
    running statement is cancelled and rolled back and DeadlineReached says what was applied.
    Every failure, the driver's included, is a MigrationError saying what failed.
    """
    migrations = load_migrations(directory)
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeadlineReached(
                "migrations did not start: no time was left before the migrate function's "
                "timeout; this run applied nothing")
        connect_timeout = max(1, min(connect_timeout, int(left)))
        connect_budget = min(connect_budget, left)
    try:
        conn = db.connect(url, connect_timeout, "cities-migrate", budget=connect_budget)
    except psycopg2.Error as exc:
        raise MigrationError(f"cannot connect to the database: {_first_line(exc)}") from exc
    run = _Run(conn, deadline)
    try:
        conn.autocommit = True  # every transaction below is explicit, lock included
        return _apply_pending(run, migrations)
    except _CommitFailed as exc:  # the ledger's own transaction: no file was in it
        if run.stopped:
            raise run.deadline_reached("during the schema_migrations check") from exc.error
        raise MigrationError(f"migrations failed: {_first_line(exc.error)}") from exc.error
    except psycopg2.Error as exc:
        raise MigrationError(f"migrations failed: {_first_line(exc)}") from exc
    finally:
        run.disarm()  # before closing: no cancel may reach a connection that is going away
        conn.close()


def _first_line(exc: psycopg2.Error) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


_STOPPED = "migrations stopped before the migrate function's timeout"

_LOCK_HOLDERS = """
SELECT DISTINCT c.relname, l.pid, coalesce(a.state, '?')
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND c.relkind IN ('r', 'p', 'm') AND c.relnamespace <> 'pg_catalog'::regnamespace
ORDER BY 1, 2
LIMIT 3
"""


class _CommitFailed(Exception):
    """COMMIT itself raised: whether it committed must be read back from the database."""

    def __init__(self, error: psycopg2.Error) -> None:
        super().__init__(str(error))
        self.error = error


class _Run:
    """One run's connection, its deadline, and what it has committed so far.

    At the deadline a timer thread marks the run stopped and cancels the running statement
    (psycopg2's `cancel()` is thread-safe); the run checks the mark before every transaction,
    after taking the lock and before COMMIT, so a statement the cancel missed starts nothing.
    """

    def __init__(self, conn: Any, deadline: float | None) -> None:
        self.conn = conn
        self.deadline = deadline
        self.applied: list[str] = []
        self.lock_timeout_s = LOCK_TIMEOUT_S
        self._stopped = threading.Event()
        self._guard = threading.Lock()  # a cancel and disarm() never overlap
        self._armed = deadline is not None
        self._timer: threading.Timer | None = None
        if deadline is not None:
            self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._stop)
            self._timer.daemon = True
            self._timer.start()

    def _stop(self) -> None:
        with self._guard:
            if not self._armed:
                return
            self._stopped.set()
            with contextlib.suppress(psycopg2.Error):
                self.conn.cancel()

    def disarm(self) -> None:
        """No cancel from here on: the run is over, whatever it did is final."""
        with self._guard:
            self._armed = False
        if self._timer is not None:
            self._timer.cancel()

    @property
    def stopped(self) -> bool:
        if self._stopped.is_set():
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    def check(self, where: str) -> None:
        """Raise DeadlineReached past the deadline: `where` says what did not go ahead."""
        if self.stopped:
            raise self.deadline_reached(where)

    def deadline_reached(self, where: str) -> DeadlineReached:
        return DeadlineReached(f"{_STOPPED} {where}; {self.applied_note()}")

    def applied_note(self) -> str:
        return f"this run applied {', '.join(self.applied) if self.applied else 'nothing'}"

    def _lock_timeout(self) -> float:
        seconds = LOCK_TIMEOUT_S
        if self.deadline is not None:
            seconds = min(seconds, (self.deadline - time.monotonic()) / 2)
        return max(seconds, 0.01)

    @contextlib.contextmanager
    def transaction(self, name: str) -> Iterator[Any]:
        """A transaction holding the migrations' lock until it ends, with its lock_timeout set
        by SET LOCAL (a session SET would not stick through a transaction pooler): committed
        when the block ends normally (unless it ended the transaction itself), rolled back when
        it raises or the deadline passed. A failing COMMIT raises _CommitFailed."""
        self.check(f"before {name}")
        with self.conn.cursor() as cur:
            cur.execute("BEGIN")
            try:
                self._take_lock(cur, name)
                self.lock_timeout_s = self._lock_timeout()
                cur.execute(f"SET LOCAL lock_timeout = {int(self.lock_timeout_s * 1000) or 1}")
                yield cur
                self.check(f"at the end of {name}, which was rolled back before its COMMIT")
            except BaseException as exc:
                if not self.conn.closed:
                    with contextlib.suppress(psycopg2.Error):
                        cur.execute("ROLLBACK")
                if isinstance(exc, psycopg2.errors.QueryCanceled) and self.stopped:
                    raise self.deadline_reached(
                        f"during {name}, which was cancelled and rolled back") from exc
                raise
            if self.conn.get_transaction_status() != _IDLE:
                try:
                    cur.execute("COMMIT")
                except psycopg2.Error as exc:
                    raise _CommitFailed(exc) from exc

    def _take_lock(self, cur: Any, name: str) -> None:
        try:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
        except psycopg2.errors.QueryCanceled as exc:
            if self.stopped:
                raise self.deadline_reached(
                    f"before {name}, while waiting for another run of the migrations to "
                    "release their lock") from exc
            raise
        self.check(f"before {name}")

    def is_recorded(self, migration: Migration) -> bool | None:
        """Whether `migration` is in schema_migrations; None when the database cannot say."""
        if self.conn.closed:
            return None
        try:
            with self.conn.cursor() as cur:
                cur.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = %s", (migration.version,)
                )
                return cur.fetchone() is not None
        except psycopg2.Error:
            return None

    def lock_holders(self) -> str:
        """Who holds table locks now, for a lock timeout's message: names and pids, no SQL."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(_LOCK_HOLDERS)
                rows = cur.fetchall()
        except psycopg2.Error:
            return ""
        held = ", ".join(f"{table} (pid {pid}, {state})" for table, pid, state in rows)
        return f" on {held}" if held else " (released since)"


def _check_unchanged(migration: Migration, name: str, checksum: str) -> None:
    if checksum != migration.checksum:
        raise MigrationError(
            f"{migration.name} was changed after it was applied as {name}; "
            "applied migrations are immutable: revert the change and add a new file"
        )


def _apply_pending(run: _Run, migrations: list[Migration]) -> dict[str, Any]:
    with run.transaction("the schema_migrations check") as cur:
        cur.execute(_CREATE_LEDGER)
        cur.execute("SELECT version, name, checksum FROM schema_migrations")
        applied = {version: (name, checksum) for version, name, checksum in cur.fetchall()}
    for migration in migrations:
        if migration.version in applied:
            _check_unchanged(migration, *applied[migration.version])
    newly_applied = [
        migration for migration in migrations
        if migration.version not in applied and _apply(run, migration)
    ]
    # Every file is applied now (by this run or another), so no round trip: a read here could
    # meet a cancel that left for the deadline just as the last COMMIT returned.
    return {
        "applied": [m.name for m in newly_applied],
        "already_applied": len(applied),
        "version": max([*applied, *(m.version for m in migrations)], default=0),
    }


def _apply(run: _Run, migration: Migration) -> bool:
    """Apply one file in its own locked transaction; False when another run applied it first."""
    try:
        with run.transaction(migration.name) as cur:
            if _recorded_by_another_run(cur, migration):
                return False
            log.info("applying migration %s", migration.name)
            del run.conn.notices[:]  # from here on, what this migration reports
            _run_file(run, cur, migration)
    except _CommitFailed as exc:
        _settle_failed_commit(run, migration, exc)
    except psycopg2.errors.LockNotAvailable as exc:
        raise MigrationError(
            f"{migration.name} was rolled back: waited {run.lock_timeout_s:.1f} s for a lock held "
            f"by another session{run.lock_holders()}; deploy again once it is released; "
            f"{run.applied_note()}"
        ) from exc
    run.applied.append(migration.name)
    for notice in run.conn.notices:  # what a migration reports (RAISE NOTICE/WARNING)
        log.warning("%s: %s", migration.name, notice.strip())
    del run.conn.notices[:]
    return True


def _recorded_by_another_run(cur: Any, migration: Migration) -> bool:
    cur.execute(
        "SELECT name, checksum FROM schema_migrations WHERE version = %s", (migration.version,)
    )
    row = cur.fetchone()
    if row is not None:
        _check_unchanged(migration, *row)
    return row is not None


def _run_file(run: _Run, cur: Any, migration: Migration) -> None:
    try:
        cur.execute(migration.sql)
        cur.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
            (migration.version, migration.name, migration.checksum),
        )
    except psycopg2.errors.LockNotAvailable:
        raise  # explained once rolled back, with who holds the lock
    except psycopg2.Error as exc:
        if isinstance(exc, psycopg2.errors.QueryCanceled) and run.stopped:
            raise  # the deadline's cancel: transaction() says so
        raise MigrationError(f"{migration.name} failed and was rolled back: {exc}") from exc


def _settle_failed_commit(run: _Run, migration: Migration, exc: _CommitFailed) -> None:
    """A COMMIT that raised may still have committed (a cancel racing it): the ledger decides.
    Returns when it did; raises, saying what the database holds, when it did not or is unknown."""
    recorded = run.is_recorded(migration)
    if recorded:
        log.warning("%s: its COMMIT reported %s but it committed", migration.name,
                    type(exc.error).__name__)
        return
    if recorded is None:
        raise MigrationError(
            f"{migration.name}: the connection failed during its COMMIT ({_first_line(exc.error)}),"
            f" so whether it committed is unknown: look for version {migration.version} in "
            f"schema_migrations; {run.applied_note()}"
        ) from exc.error
    if run.stopped:
        raise run.deadline_reached(
            f"during the COMMIT of {migration.name}, which was rolled back") from exc.error
    raise MigrationError(
        f"{migration.name} failed at COMMIT and was rolled back: {_first_line(exc.error)}"
    ) from exc.error
