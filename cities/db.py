"""The database connection's life: at most one per request, opened lazily, always closed.

Lambda freezes a container between invocations, so a connection kept open across requests goes
stale without notice and pins a slot on the server; a request opens its own connection when it
first needs one and closes it in teardown, whatever happened. Requests that need no data
(`/openapi.json`, an unknown route, a body refused before any query) open none.

Only connecting is retried (a scale-to-zero database may be waking up): once a query may have
reached the server it is never replayed, so a write is never applied twice behind a client's back.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Sequence

import psycopg2
import psycopg2.extensions
from flask import Flask, current_app, g

from .errors import ServiceUnavailable

log = logging.getLogger("cities")

APPLICATION_NAME = "cities"

# Connection failures no retry can fix: fail at once instead of burning the request's budget.
PERMANENT_FAILURES = (
    "password authentication failed",
    "authentication failed",
    "does not exist",  # database or role
    "no pg_hba.conf entry",
    "could not translate host name",
    "certificate verify failed",
    "server does not support ssl",
    "invalid sslmode",
    "invalid connection option",
    "invalid dsn",
    "invalid uri",
    "missing \"=\"",
    "root certificate file",
)

# CA bundles present on Lambda (Amazon Linux) and Debian-like systems. psycopg2-binary's bundled
# OpenSSL looks for its defaults under its build host's paths, so `verify-full` without an
# explicit `sslrootcert` would fail on Lambda; we point it at a bundle that exists.
CA_BUNDLES = (
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/cert.pem",
)


def is_permanent(error: psycopg2.OperationalError) -> bool:
    message = str(error).lower()
    return any(marker in message for marker in PERMANENT_FAILURES)


def ssl_root_cert(url: str, candidates: Sequence[str] | None = None) -> str | None:
    """A CA bundle for `verify-ca`/`verify-full` unless the URL or PGSSLROOTCERT names one."""
    params = psycopg2.extensions.parse_dsn(url)
    mode = params.get("sslmode") or os.environ.get("PGSSLMODE", "")
    if mode not in ("verify-ca", "verify-full"):
        return None
    if params.get("sslrootcert") or os.environ.get("PGSSLROOTCERT"):
        return None
    return next((path for path in candidates or CA_BUNDLES if os.path.isfile(path)), None)


def connect(
    url: str,
    connect_timeout: int,
    application_name: str = APPLICATION_NAME,
    budget: float = 0.0,
):
    """A new connection, retrying transient failures with jittered backoff within `budget` s.

    Keyword settings take precedence over those in the URL.
    """
    options: dict[str, object] = {"application_name": application_name}
    root_cert = ssl_root_cert(url)
    if root_cert:
        options["sslrootcert"] = root_cert
    deadline = time.monotonic() + budget
    attempt = 0
    while True:
        remaining = math.ceil(deadline - time.monotonic())
        # Never start an attempt that could outlive the budget (libpq rounds 1 s up to 2 s).
        options["connect_timeout"] = max(1, min(connect_timeout, remaining)) if budget else (
            connect_timeout
        )
        try:
            return psycopg2.connect(url, **options)
        except psycopg2.OperationalError as exc:
            attempt += 1
            delay = random.uniform(0, min(1.0, 0.1 * 2**attempt))  # noqa: S311 - jitter only
            if is_permanent(exc) or time.monotonic() + delay >= deadline:
                raise
            log.info("connection attempt %d failed (%s); retrying", attempt, type(exc).__name__)
            time.sleep(delay)


def get_db() -> psycopg2.extensions.connection:
    """This request's connection, opened on first use, inside a transaction with a timeout.

    `BEGIN` and `SET LOCAL statement_timeout` travel in one round trip (the one psycopg2 would
    spend on its implicit BEGIN); a startup `options` parameter would be simpler but poolers
    such as Neon's refuse it.
    """
    conn = g.get("db")
    if conn is None:
        config = current_app.config
        url = config.get("DATABASE_URL")
        if not url:
            log.error("DATABASE_URL is not set: the API cannot reach its database")
            raise ServiceUnavailable("The service is not configured: its database URL is missing.")
        g.db_state = "failed"
        try:
            conn = connect(url, config["DB_CONNECT_TIMEOUT"], budget=config["DB_CONNECT_BUDGET"])
        except psycopg2.OperationalError as exc:
            log.warning("cannot connect to the database: %s", type(exc).__name__)
            raise ServiceUnavailable("The database is unavailable; retry shortly.") from None
        g.db, g.db_state = conn, "opened"
        conn.autocommit = True  # transactions are explicit: see the docstring
        with conn.cursor() as cur:
            cur.execute(
                "BEGIN; SET LOCAL statement_timeout = %s", (config["DB_STATEMENT_TIMEOUT_MS"],)
            )
    return conn


def commit() -> None:
    """Commit this request's transaction; without it, closing the connection rolls back."""
    with g.db.cursor() as cur:
        cur.execute("COMMIT")


def close_db(exc: BaseException | None = None) -> None:
    """Close this request's connection, if it opened one; uncommitted work is rolled back."""
    conn = g.pop("db", None)
    if conn is None:
        return
    try:
        conn.close()
    except psycopg2.Error:  # pragma: no cover - close() on a broken socket still frees it
        log.warning("error while closing a database connection", exc_info=True)


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
