"""The database connection's life: at most one per request, opened lazily, always closed.

Lambda freezes a container between invocations, so a connection kept open across requests goes
stale without notice and pins a slot on the server; a request opens its own connection when it
first needs one and closes it in teardown, whatever happened, with no transaction left open (a
transaction pooler discards a server its client left mid-transaction). Requests that need no data
(`/openapi.json`, an unknown route, a body refused before any query) open none.

Only connecting is retried (a scale-to-zero database may be waking up): once a query may have
reached the server it is never replayed, so a write is never applied twice behind a client's back.

Opt-in (`DB_CONNECTION_REUSE`): a warm container keeps one connection between requests, because
connecting to a hosted Postgres costs TCP + TLS + SCRAM round trips on every request. The kept
connection is handed out again only when it looks healthy without a round trip (open, idle for
less than `DB_CONNECTION_MAX_IDLE` seconds, no transaction, and nothing unread on its socket: a
backend that was terminated or a server that went down leaves a notice or EOF there); otherwise
it is dropped and a new one opened. If it still fails on the request's first statement (the
`BEGIN`, so nothing of the request was sent), it is replaced transparently too. At the end of a
request a clean connection is kept (an open transaction is rolled back first); after any database
error or unhandled exception it is closed, so no transaction or broken state reaches the next
request.
"""

from __future__ import annotations

import logging
import math
import os
import random
import select
import threading
import time
from collections.abc import Sequence

import psycopg2
import psycopg2.extensions
from flask import Flask, current_app, g

from cities.http.errors import ServiceUnavailable
from cities.ops.secrets_mask import mask_secrets

log = logging.getLogger("cities")

APPLICATION_NAME = "cities"
_EXTENSION = "cities.kept_connection"
_IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE
_INTRANS = psycopg2.extensions.TRANSACTION_STATUS_INTRANS
_INERROR = psycopg2.extensions.TRANSACTION_STATUS_INERROR

# Connection failures no retry can fix: fail at once instead of burning the request's budget.
PERMANENT_FAILURES = (
    "password authentication failed",
    "authentication failed",
    "does not exist",  # database or role
    "no pg_hba.conf entry",
    "pg_hba.conf rejects connection",
    "connection is insecure",  # Neon's proxy, to a client without TLS
    "channel binding",  # channel_binding=require and no TLS, or a login without SCRAM
    "could not translate host name",
    "certificate verify failed",
    "server does not support ssl",
    "invalid sslmode",
    "invalid connection option",
    "invalid dsn",
    "invalid uri",
    "missing \"=\"",
    "root certificate file",
    "invalid integer value",  # a port that is not one: often a password's unencoded `/`
    "invalid port number",
    "does not support direct tls negotiation",  # our own DirectTlsRefused
)

# How a server without direct TLS negotiation answers a ClientHello sent as its first bytes:
# PostgreSQL before 17 hangs up (EOF), PgBouncer 1.18 answers in its own protocol (which TLS
# reads as a wrong version number). Without `sslnegotiation=direct` an EOF may be transient.
DIRECT_TLS_REFUSALS = ("eof detected", "unexpected eof", "wrong version number")

# The CA roots a verifying connection trusts unless the URL or PGSSLROOTCERT names its own: the
# roots of the documented hosts (the file's header says which, and how to update them). libpq
# parses its CA file on every connect, and the system bundle's ~145 certificates cost 80% more
# client instructions per connect than these two (docs/benchmarks.md).
ROOT_CERTS = os.path.join(os.path.dirname(__file__), "certs", "roots.pem")

# System CA bundles on Lambda (Amazon Linux) and Debian-like systems: what `sslrootcert=system`
# means here. psycopg2-binary's bundled OpenSSL looks for its default store under its build
# host's paths, so libpq's own `system` would find nothing on Lambda.
CA_BUNDLES = (
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/cert.pem",
)


class DatabaseUrlError(ValueError):
    """The database URL cannot be parsed. The message says what to check and quotes libpq's
    complaint with the URL's credentials masked (libpq repeats the malformed URL)."""

    def __init__(self, url: str, error: Exception) -> None:
        super().__init__(
            "the database URL is malformed (expected postgresql://user:password@host/dbname, "
            "with no leading space and any @ : / in the password percent-encoded): "
            + mask_secrets(str(error), url).strip()
        )


def is_permanent(error: psycopg2.OperationalError) -> bool:
    message = str(error).lower()
    return any(marker in message for marker in PERMANENT_FAILURES)


class DirectTlsRefused(psycopg2.OperationalError):
    """The server cannot take TLS at once (`sslnegotiation=direct`): a setting to change, so it
    is reported as such and never retried for the whole connect budget."""

    def __init__(self, error: psycopg2.OperationalError) -> None:
        said = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        super().__init__(
            "the server does not support direct TLS negotiation (sslnegotiation=direct needs "
            "PostgreSQL 17 or later, or a proxy that offers it such as Neon's; PgBouncer 1.18 "
            f"does not): remove sslnegotiation=direct from the URL. libpq said: {said}"
        )


def negotiates_tls_directly(url: str) -> bool:
    """True when libpq will send its TLS ClientHello first (`sslnegotiation=direct`)."""
    params = psycopg2.extensions.parse_dsn(url)
    return (params.get("sslnegotiation") or os.environ.get("PGSSLNEGOTIATION")) == "direct"


def refused_direct_tls(error: psycopg2.OperationalError, direct: bool) -> bool:
    """True when a direct-negotiation connect failed the way servers without it answer."""
    message = str(error).lower()
    return direct and any(marker in message for marker in DIRECT_TLS_REFUSALS)


def ssl_root_cert(url: str, candidates: Sequence[str] | None = None) -> str | None:
    """The CA file to pass libpq for `verify-ca`/`verify-full`, or None to leave its choice.

    The shipped roots (`ROOT_CERTS`) unless the URL or PGSSLROOTCERT names a file, which is then
    used as is; `system`, the explicit fallback, is the first system bundle that exists.
    """
    params = psycopg2.extensions.parse_dsn(url)
    mode = params.get("sslmode") or os.environ.get("PGSSLMODE", "")
    if mode not in ("verify-ca", "verify-full"):
        return None
    named = params.get("sslrootcert") or os.environ.get("PGSSLROOTCERT")
    if not named:
        return ROOT_CERTS
    if named == "system":
        return system_ca_bundle(candidates)
    return None


def system_ca_bundle(candidates: Sequence[str] | None = None) -> str | None:
    """The first system CA bundle that exists (None: libpq's own `system`, which then fails)."""
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
    try:
        root_cert = ssl_root_cert(url)
    except psycopg2.ProgrammingError as exc:  # "invalid dsn": a URL libpq cannot parse
        raise DatabaseUrlError(url, exc) from None
    if root_cert:
        options["sslrootcert"] = root_cert
    direct = negotiates_tls_directly(url)
    deadline = time.monotonic() + budget
    attempt = 0
    while True:
        remaining = math.ceil(deadline - time.monotonic())
        # Never start an attempt that could outlive the budget (libpq rounds 1 s up to 2 s).
        options["connect_timeout"] = max(1, min(connect_timeout, remaining)) if budget else (
            connect_timeout
        )
        try:
            return psycopg2.connect(url, connection_factory=Connection, **options)
        except psycopg2.ProgrammingError as exc:
            raise DatabaseUrlError(url, exc) from None
        except psycopg2.OperationalError as exc:
            if refused_direct_tls(exc, direct):
                raise DirectTlsRefused(exc) from None
            attempt += 1
            delay = random.uniform(0, min(1.0, 0.1 * 2**attempt))  # noqa: S311 - jitter only
            if is_permanent(exc) or time.monotonic() + delay >= deadline:
                raise
            log.info("connection attempt %d failed (%s); retrying", attempt, type(exc).__name__)
            time.sleep(delay)


class PreludeCursor(psycopg2.extensions.cursor):
    """Sends its connection's pending prelude, or its standing prefix, with the statement."""

    def execute(self, query: str, vars: object = None) -> None:
        conn = self.connection
        prelude = conn.prelude
        if prelude:
            conn.prelude = None
            query = prelude + query
        elif conn.prefix:
            query = conn.prefix + query
        return super().execute(query, vars)


class Connection(psycopg2.extensions.connection):
    """A connection whose statements can carry others in the same round trip.

    `prelude` rides once, with the next statement: a write's `BEGIN; SET LOCAL statement_timeout`.
    `prefix` rides with every statement: a read's `SET LOCAL statement_timeout`, which PostgreSQL
    applies to the implicit transaction of that one multi-statement message, so each read
    statement has its timeout and ends its transaction in a single round trip.
    """

    prelude: str | None = None
    prefix: str | None = None

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.cursor_factory = PreludeCursor


def _discard(conn: psycopg2.extensions.connection) -> None:
    try:
        conn.close()
    except psycopg2.Error:  # pragma: no cover - close() on a broken socket still frees it
        log.warning("error while closing a database connection", exc_info=True)


def _has_unread_data(conn: psycopg2.extensions.connection) -> bool:
    """True when an idle connection's socket is readable: a termination notice, or EOF."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


class KeptConnection:
    """The one connection a warm container keeps between requests (`DB_CONNECTION_REUSE`).

    A request takes it (so two threads of a local server never share it) and gives it back.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: psycopg2.extensions.connection | None = None
        self._idle_since = 0.0

    def take(self, max_idle: float) -> psycopg2.extensions.connection | None:
        """The kept connection if it is still healthy; a stale one is closed and None returned."""
        with self._lock:
            conn, self._conn = self._conn, None
            idle_for = time.monotonic() - self._idle_since
        if conn is None:
            return None
        try:
            healthy = (
                not conn.closed
                and idle_for < max_idle
                and conn.get_transaction_status() == _IDLE
                and not _has_unread_data(conn)
            )
        except (psycopg2.Error, OSError, ValueError):
            healthy = False
        if not healthy:
            log.info("dropping a stale kept database connection (idle %.1fs)", idle_for)
            _discard(conn)
            return None
        return conn

    def give_back(self, conn: psycopg2.extensions.connection) -> None:
        """Keep `conn` for the next request, or close it when one is already kept."""
        with self._lock:
            if self._conn is None:
                self._conn, self._idle_since = conn, time.monotonic()
                return
        _discard(conn)

    def drop(self) -> None:
        """Close the kept connection, if any."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            _discard(conn)


def kept_connection(app: Flask) -> KeptConnection:
    return app.extensions[_EXTENSION]


def _settle(conn: psycopg2.extensions.connection) -> bool:
    """Roll back any transaction left open; True when the connection is idle and may be kept.

    A pooler in transaction mode cannot reuse a server whose client left inside a transaction:
    it closes that server, and the next request makes PostgreSQL fork a new backend. So even a
    connection about to be closed is rolled back first; one whose transaction failed is never
    kept.
    """
    if conn.closed:
        return False
    conn.prelude = conn.prefix = None
    status = conn.get_transaction_status()
    if status in (_INTRANS, _INERROR):  # an uncommitted write, a failed one, a reuse-mode read
        try:
            with conn.cursor() as cur:
                cur.execute("ROLLBACK")
        except psycopg2.Error:
            return False
        return status == _INTRANS and conn.get_transaction_status() == _IDLE
    return status == _IDLE


def _timeout_sql(statement_timeout_ms: int) -> str:
    return f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}; "


def _begin_sql(statement_timeout_ms: int) -> str:
    return "BEGIN; " + _timeout_sql(statement_timeout_ms)


def _begin(conn: psycopg2.extensions.connection, statement_timeout_ms: int) -> None:
    conn.autocommit = True  # transactions are explicit: see get_db
    conn.prelude = conn.prefix = None  # begun here, explicitly: nothing rides along any more
    with conn.cursor() as cur:
        cur.execute(_begin_sql(statement_timeout_ms))


def _reuse(config: dict) -> psycopg2.extensions.connection | None:
    """The kept connection with this request's transaction begun, or None to connect anew.

    A kept connection that fails on `BEGIN` died silently while idle; nothing of this request
    reached the server, so it is dropped and the request simply opens a new one.
    """
    conn = kept_connection(current_app).take(config["DB_CONNECTION_MAX_IDLE"])
    if conn is None:
        return None
    try:
        _begin(conn, config["DB_STATEMENT_TIMEOUT_MS"])
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        log.info("kept connection failed before use (%s); reconnecting", type(exc).__name__)
        _discard(conn)
        return None
    return conn


def get_db() -> psycopg2.extensions.connection:
    """This request's connection for reading, opened on first use; every statement has a timeout.

    On a new connection each statement travels as `SET LOCAL statement_timeout = N; <statement>`:
    one message, one implicit transaction, one round trip, and the connection is idle again as
    soon as it answers. A startup `options` parameter would be simpler but poolers such as Neon's
    refuse it. A kept connection (reuse mode) begins a transaction explicitly first, so one that
    died while idle fails before any of the request was sent; it is rolled back at the end.
    """
    conn = g.get("db")
    if conn is None:
        config = current_app.config
        url = config.get("DATABASE_URL")
        if not url:
            log.error("DATABASE_URL is not set: the API cannot reach its database")
            raise ServiceUnavailable("The service is not configured: its database URL is missing.")
        g.db_state = "failed"
        if config.get("DB_CONNECTION_REUSE"):
            conn = _reuse(config)
            if conn is not None:
                g.db, g.db_state = conn, "reused"
                return conn
        try:
            conn = connect(url, config["DB_CONNECT_TIMEOUT"], budget=config["DB_CONNECT_BUDGET"])
        except DatabaseUrlError as exc:
            log.error("DATABASE_URL is not usable: %s", exc)
            raise ServiceUnavailable(
                "The service is not configured: its database URL is malformed."
            ) from None
        except psycopg2.OperationalError as exc:
            if is_permanent(exc):
                log.error("cannot connect to the database: %s", mask_secrets(str(exc), url).strip())
            else:
                log.warning("cannot connect to the database: %s", type(exc).__name__)
            raise ServiceUnavailable("The database is unavailable; retry shortly.") from None
        g.db, g.db_state = conn, "opened"
        conn.autocommit = True  # transactions are explicit: see transaction()
        conn.prefix = _timeout_sql(config["DB_STATEMENT_TIMEOUT_MS"])
    return conn


def transaction() -> psycopg2.extensions.connection:
    """This request's connection inside one transaction, for a write that `commit()` ends.

    `BEGIN` and the timeout ride with the transaction's first statement; without a commit the
    transaction is rolled back at teardown.
    """
    conn = get_db()
    if conn.prefix:  # reading so far, each statement on its own: begin with the next one
        conn.prelude, conn.prefix = _begin_sql(current_app.config["DB_STATEMENT_TIMEOUT_MS"]), None
    return conn


def commit() -> None:
    """Commit this request's transaction; without it, teardown rolls it back."""
    with g.db.cursor() as cur:
        cur.execute("COMMIT")


def close_db(exc: BaseException | None = None) -> None:
    """Close this request's connection, if it opened one, idle: uncommitted work is rolled back.

    With reuse on, a connection that ended the request cleanly is kept instead.
    """
    conn = g.pop("db", None)
    if conn is None:
        return
    idle = _settle(conn)
    if current_app.config.get("DB_CONNECTION_REUSE") and exc is None and idle:
        kept_connection(current_app).give_back(conn)
        return
    _discard(conn)


def init_app(app: Flask) -> None:
    app.extensions[_EXTENSION] = KeptConnection()
    app.teardown_appcontext(close_db)
