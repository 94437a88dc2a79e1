"""Counting writes against their writer's quota in the write's own transaction (migration 0007).

The count rides in the message that commits the write, `<take>; COMMIT; <read>`, so quotas add
no round trip: the COMMIT is sent anyway. `take` adds one to the writer's row in its current
window, or starts a new window at the transaction's time (`now()`) when the last one has ended;
the row's CHECK (`writes <= quota`) refuses the write that would pass the quota, which aborts the
whole transaction before its COMMIT runs: the write's own changes are rolled back with it. The
row lock `take` holds lasts only until that COMMIT, in the same message, and concurrent writers
take it in turn, each adding to the count the one before committed: N writes succeed, exactly.

`read`, after the COMMIT (in the same message, its own implicit transaction, the same server
behind a transaction pooler: PgBouncer hands a server back only when the whole message is done),
says how many writes the window holds and how many seconds it has left, for the RateLimit
fields; after a refusal it rides with the ROLLBACK instead. A write that wrote nothing (no such
item) or replays an idempotent create commits without `take`: it costs no quota.
"""

from __future__ import annotations

from typing import NamedTuple

from psycopg2 import errors as pgerrors
from psycopg2.extensions import connection

# The CHECK that refuses a write past the quota (migration 0007).
WITHIN_QUOTA = "write_quota_within_quota"

_WINDOW_END = "q.window_start + make_interval(secs => %(window)s)"

TAKE = f"""
INSERT INTO write_quota AS q (writer, window_start, writes, quota)
VALUES (%(writer)s, now(), 1, %(quota)s)
ON CONFLICT (writer) DO UPDATE SET
    window_start = CASE WHEN {_WINDOW_END} <= now() THEN now() ELSE q.window_start END,
    writes = CASE WHEN {_WINDOW_END} <= now() THEN 1 ELSE q.writes + 1 END,
    quota = EXCLUDED.quota
"""

# (writes in the current window, whole seconds until it ends); (0, window) when none is open.
READ = f"""
SELECT coalesce(max(q.writes), 0),
       coalesce(max(ceil(extract(epoch FROM {_WINDOW_END} - now())))::bigint, %(window)s)
FROM write_quota AS q
WHERE q.writer = %(writer)s AND {_WINDOW_END} > now()
"""


class Usage(NamedTuple):
    """A writer's window as the database saw it: its quota and length (the policy), the writes
    it holds, and the whole seconds until it ends."""

    quota: int
    window: int
    writes: int
    reset: int

    @property
    def remaining(self) -> int:
        return max(0, self.quota - self.writes)


class QuotaExceeded(Exception):
    """The write would pass its writer's quota: its transaction was rolled back."""

    def __init__(self, usage: Usage) -> None:
        super().__init__("write quota exceeded")
        self.usage = usage


def _timeout_sql(statement_timeout_ms: int) -> str:
    """The statements after COMMIT run in a transaction of their own: their own timeout."""
    return f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}; "


def commit_counted(conn: connection, writer: str, quota: int, window: int, *, count: bool,
                   statement_timeout_ms: int) -> Usage:
    """Commit the request's transaction, counting its write against `writer`'s quota when
    `count`, and read the writer's usage, in one message; QuotaExceeded (rolled back) past it."""
    params = {"writer": writer, "quota": quota, "window": window}
    timeout = _timeout_sql(statement_timeout_ms)
    take = f"{TAKE}; " if count else ""
    try:
        with conn.cursor() as cur:
            cur.execute(f"{take}COMMIT; {timeout}{READ}", params)
            writes, reset = cur.fetchone()
    except pgerrors.CheckViolation as error:
        if getattr(error.diag, "constraint_name", None) != WITHIN_QUOTA:
            raise
        with conn.cursor() as cur:  # the ROLLBACK teardown would send, with the usage read
            cur.execute(f"ROLLBACK; {timeout}{READ}", params)
            writes, reset = cur.fetchone()
        raise QuotaExceeded(Usage(quota, window, writes, reset)) from None
    return Usage(quota, window, writes, reset)
