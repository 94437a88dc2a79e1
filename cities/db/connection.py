"""The database connection's life: at most one per request, opened lazily, always closed.

Lambda freezes a container between invocations, so a connection kept open across requests goes
stale without notice and pins a slot on the server; a request opens its own connection when it
first needs one and closes it in teardown, whatever happened, with no transaction left open (a
transaction pooler discards a server its client left mid-transaction). Requests that need no data
(`/openapi.json`, an unknown route, a body refused before any query) open none.

Only connecting is retried (a scale-to-zero database may be waking up), and a pooler's refusal of
the request's first statement, which it sends before forwarding anything (below): once a query
may have reached the server it is never replayed, so a write is never applied twice behind a
client's back.

Opt-in (`DB_CONNECTION_REUSE`): a warm container keeps one connection between requests, because
connecting to a hosted Postgres costs TCP + TLS + SCRAM round trips on every request. The kept
connection is handed out again only when it looks healthy without a round trip (open, idle for
less than `DB_CONNECTION_MAX_IDLE` seconds, no transaction, and nothing unread on its socket: a
backend that was terminated or a server that went down leaves a notice or EOF there); otherwise
it is dropped and a new one opened. It is then used like a new one, one round trip per read
(an item's read is sent before Flask runs, `send_ahead`, cities.http.early_read);
if it still breaks on the request's first statement (a read, or the `BEGIN` sent alone before a
write), nothing of the request took effect, and the view runs again on a new connection. At the
end of a request a clean connection is kept (an open transaction is rolled back first); after
any database error or unhandled exception it is closed, so no transaction or broken state
reaches the next request.

Every request's database work ends within `request_bound`: `DB_CONNECT_BUDGET`, plus the
statement timeout, plus `DEADLINE_MARGIN`, counted from its first connection attempt. Through a
transaction pooler the login succeeds at once (PgBouncer answers it itself), and the first
statement then waits in the pooler's queue for as long as the server is down; a statement timeout
cannot end that wait (no server has the statement), nor can `conn.cancel()` (the pooler has
nothing to cancel). So the API's connections are psycopg2 *asynchronous* connections whose every
wait, connecting included, is a poll on the socket that gives up at the request's deadline; the
connection is then closed and the request answers 503 with `Retry-After`. (PgBouncer does not
watch a queued client's socket: once a server is free it forwards what it had queued, finds the
client gone and drops that server's transaction. A write's first statement always opens its
transaction, so what a 503 left queued never commits.)

Why asynchronous connections rather than psycopg2's wait callback (`set_wait_callback`): the
callback is process-global and would put every connection of the process (migrations, tests)
into "green" mode, where libpq ignores `connect_timeout` and COPY is unsupported. A deadline on
the first statement only is not enough either: in transaction mode every read transaction queues
again, and a blocking psycopg2 connection reports a pooler's refusal only as "server closed the
connection unexpectedly", losing the message the retry below needs. Asynchronous connections are
always in autocommit, which is how the API uses them (its transactions are explicit), and a read
stays one round trip. The price is a short Python poll loop per wait, a few percent of a
request's instructions (docs/benchmarks.md, Design measurements). Migrations keep plain blocking
connections (`connect` without a deadline).

A pooler that refuses the request's first statement before sending it to any server
(`NOT_FORWARDED`: PgBouncer's "server login has been failing", its answer for `server_login_retry`
seconds after a failed server login, or `query_wait_timeout`) is retried within the connect
budget: nothing of the request reached the database, so its view runs again on a new
connection (`init_app`). A failure of any later statement, or of one that may have reached a
server, is never retried.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import random
import select
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg2
import psycopg2.extensions
from flask import Flask, current_app, g, has_request_context, request

from cities.http.errors import ServiceUnavailable
from cities.ops.secrets_mask import mask_secrets

log = logging.getLogger("cities")

# Past the connect budget and the statement timeout: the statement's round trip and the Python
# around it. A request's database work ends within request_bound() (tests/deploy/test_deploy.py
# keeps it below the function's timeout).
DEADLINE_MARGIN = 1.0
_POLL_OK = psycopg2.extensions.POLL_OK
_POLL_READ = psycopg2.extensions.POLL_READ
_POLLIN, _POLLOUT = select.POLLIN, select.POLLOUT

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

# PgBouncer's answers to a query it never sent to a server (each then closes the connection): no
# server login succeeded lately (`server_login_retry`; "pgbouncer cannot connect to server" up to
# 1.16), the query waited in its queue past `query_wait_timeout`, or the pooler is shutting down.
NOT_FORWARDED = (
    "server login has been failing",
    "pgbouncer cannot connect to server",
    "query_wait_timeout",
    "server shutting down",
)


class DatabaseTimeout(psycopg2.OperationalError):
    """No answer from the database in time: a connect attempt's timeout, or the request's
    deadline. The connection was closed; like any OperationalError, this answers 503."""


class NotForwarded(psycopg2.OperationalError):
    """The pooler refused the request's first statement before any server saw it."""


class KeptConnectionDied(NotForwarded):
    """The kept connection broke on the request's first statement, a read (or a write's lone
    BEGIN): nothing that statement did can outlive it, so the view runs again on a new one."""


# How a server without direct TLS negotiation answers a ClientHello sent as its first bytes:
# PostgreSQL before 17 hangs up (EOF), PgBouncer 1.18 answers in its own protocol (which TLS
# reads as a wrong version number). Without `sslnegotiation=direct` an EOF may be transient.
DIRECT_TLS_REFUSALS = ("eof detected", "unexpected eof", "wrong version number")

# The CA roots a verifying connection trusts unless the URL or PGSSLROOTCERT names its own: the
# roots of the documented hosts (the file's header says which, and how to update them). libpq
# parses its CA file on every connect, and the system bundle's many certificates cost far more
# client instructions per connect than these two (docs/benchmarks.md, TLS connect).
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


def refused_before_forwarding(error: psycopg2.Error) -> bool:
    """True for a pooler's own refusal of a query (`NOT_FORWARDED`), read from the first line
    only ("FATAL:  <message>"): a server's error that merely quotes such words is not one."""
    severity, _, message = str(error).partition("\n")[0].partition(":")
    return severity in ("FATAL", "ERROR") and message.strip().lower().startswith(NOT_FORWARDED)


def request_bound(config: Mapping[str, Any]) -> float:
    """Seconds a request's database work may take, connecting included (module docstring)."""
    return (
        config["DB_CONNECT_BUDGET"] + config["DB_STATEMENT_TIMEOUT_MS"] / 1000 + DEADLINE_MARGIN
    )


def _backoff(attempt: int) -> float:
    return random.uniform(0, min(1.0, 0.1 * 2**attempt))  # noqa: S311 - jitter only


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
    deadline: float | None = None,
):
    """A new connection, retrying transient failures with jittered backoff within `budget` s.

    With a `deadline` (a `time.monotonic()` value) the connection is asynchronous and every wait
    on it ends by then (module docstring); each attempt also ends within `connect_timeout` and
    the budget. Without one it is a blocking connection, as migrations use. Keyword settings take
    precedence over those in the URL.
    """
    options: dict[str, object] = {"application_name": application_name}
    try:
        root_cert = ssl_root_cert(url)
    except psycopg2.ProgrammingError as exc:  # "invalid dsn": a URL libpq cannot parse
        raise DatabaseUrlError(url, exc) from None
    if root_cert:
        options["sslrootcert"] = root_cert
    direct = negotiates_tls_directly(url)
    budget_end = time.monotonic() + budget
    attempt = 0
    while True:
        try:
            if deadline is not None:
                attempt_end = min(time.monotonic() + connect_timeout, budget_end)
                return _connect_async(url, options, attempt_end, deadline)
            remaining = math.ceil(budget_end - time.monotonic())
            # Never start an attempt that could outlive the budget (libpq rounds 1 s up to 2 s).
            timeout = max(1, min(connect_timeout, remaining)) if budget else connect_timeout
            return psycopg2.connect(
                url, connection_factory=Connection, connect_timeout=timeout, **options
            )
        except psycopg2.ProgrammingError as exc:
            raise DatabaseUrlError(url, exc) from None
        except psycopg2.OperationalError as exc:
            if refused_direct_tls(exc, direct):
                raise DirectTlsRefused(exc) from None
            attempt += 1
            delay = _backoff(attempt)
            if is_permanent(exc) or time.monotonic() + delay >= budget_end:
                raise
            log.info("connection attempt %d failed (%s); retrying", attempt, type(exc).__name__)
            time.sleep(delay)


def _connect_async(
    url: str, options: Mapping[str, object], attempt_end: float, deadline: float
) -> Connection:
    """One asynchronous connection attempt that gives up at `attempt_end` (libpq's own
    `connect_timeout` applies only to blocking connections)."""
    conn = psycopg2.connect(url, connection_factory=Connection, async_=True, **options)
    conn.deadline = attempt_end
    try:
        _wait(conn)
    except BaseException:
        _discard(conn)
        raise
    conn.deadline = deadline
    return conn


def _wait(conn: Connection) -> None:
    """Wait for `conn`'s answer, to its connect or to the statement just sent, until its deadline;
    past it, close the connection: a cancel request could not free a client a pooler queued."""
    poller = None
    while True:
        state = conn.poll()
        if state == _POLL_OK:
            return
        timeout = conn.deadline - time.monotonic()
        if timeout > 0:
            if poller is None:
                poller = select.poll()
            poller.register(conn.fileno(), _POLLIN if state == _POLL_READ else _POLLOUT)
            if poller.poll(timeout * 1000):  # milliseconds, rounded up
                continue
        _discard(conn)
        raise DatabaseTimeout("the database did not answer in time")


class PreludeCursor(psycopg2.extensions.cursor):
    """Sends its connection's pending prelude, or its standing prefix, with the statement; on an
    asynchronous connection, waits for the answer within the request's deadline."""

    def execute(self, query: str, vars: object = None) -> None:
        conn = self.connection
        ahead, conn.ahead = conn.ahead, None
        sent = ahead is not None and ahead == (self, query, vars)  # send_ahead sent it already
        prelude = conn.prelude
        retryable, conn.retry_if_dead = conn.retry_if_dead and not prelude, False
        if prelude:
            conn.prelude = None
            query = prelude + query
        elif conn.prefix:
            query = conn.prefix + query
        started = time.perf_counter()
        try:
            if ahead is not None and not sent:
                conn.answer()  # another statement than the one sent ahead: drop its answer first
            if not sent:
                super().execute(query, vars)
            if conn.async_:
                conn.answer()
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            if retryable and died_in_use(conn, exc):
                log.info("kept connection failed on its first statement (%s); reconnecting",
                         type(exc).__name__)
                raise KeptConnectionDied(type(exc).__name__) from None
            raise
        finally:
            conn.busy += time.perf_counter() - started


class Connection(psycopg2.extensions.connection):
    """A connection whose statements can carry others in the same round trip.

    `prelude` rides once, with the next statement: a write's `BEGIN; SET LOCAL statement_timeout`.
    `prefix` rides with every statement: a read's `SET LOCAL statement_timeout`, which PostgreSQL
    applies to the implicit transaction of that one multi-statement message, so each read
    statement has its timeout and ends its transaction in a single round trip.
    """

    prelude: str | None = None
    prefix: str | None = None
    # Asynchronous connections only: when every answer is due (time.monotonic(); whoever hands
    # the connection out sets it, so one handed out without it fails at once instead of waiting
    # forever), and whether the next statement is the request's first, which a pooler may refuse
    # before forwarding it.
    deadline = 0.0
    first = False
    # A kept connection whose next statement is the request's first, a read: may it be retried
    # on a new connection if the kept one turns out dead? (see _reuse)
    retry_if_dead = False
    # Seconds this request spent connecting and waiting on statements (the metric DatabaseTime).
    busy = 0.0
    # A read sent before the view asked for it (send_ahead): (its cursor, statement, parameters),
    # and the request's (connect budget end, deadline) from when it was sent.
    ahead: tuple[Any, str, object] | None = None
    times = (0.0, 0.0)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.cursor_factory = PreludeCursor

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        """A new cursor; while a read sent ahead is pending, the cursor it was sent on, so the
        view's `execute` of that same statement only waits for its answer."""
        if self.ahead is not None and not (args or kwargs):
            return self.ahead[0]
        return super().cursor(*args, **kwargs)

    def answer(self) -> None:
        """Wait for the answer to the statement just sent (asynchronous connections)."""
        first, self.first = self.first, False
        try:
            _wait(self)
        except DatabaseTimeout:
            log.warning(
                "no answer from the database within the request's bound (DB_CONNECT_BUDGET + "
                "DB_STATEMENT_TIMEOUT_MS + %g s); its connection is closed", DEADLINE_MARGIN
            )
            raise
        except psycopg2.OperationalError as exc:
            if first and refused_before_forwarding(exc):
                raise NotForwarded(str(exc).partition("\n")[0]) from None
            raise


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
    conn.prelude = conn.prefix = None  # begun here, explicitly: nothing rides along any more
    with conn.cursor() as cur:
        cur.execute(_begin_sql(statement_timeout_ms))


def died_in_use(conn: psycopg2.extensions.connection, error: Exception) -> bool:
    """True when `error` broke the connection itself (closed socket, terminated backend), not a
    statement on a live one (a timeout, a cancelled query) nor the request's deadline."""
    return bool(conn.closed) and not isinstance(error, DatabaseTimeout)


def _reuse(app: Flask, deadline: float) -> psycopg2.extensions.connection | None:
    """The kept connection, used like a new one: each read is one round trip
    (`SET LOCAL statement_timeout; SELECT`), or None to connect anew.

    A kept connection can die silently while idle. If it breaks on the request's first
    statement, a read, nothing of the request can have had an effect and no byte of an answer
    reached the client, so the view runs once more on a new connection (`KeptConnectionDied`,
    `_retry_refused`). A write on it first sends `BEGIN` alone (`transaction`), retried the same
    way; the write itself is never resent.
    """
    config = app.config
    conn = kept_connection(app).take(config["DB_CONNECTION_MAX_IDLE"])
    if conn is not None:
        conn.deadline = deadline
        conn.busy = 0.0  # this request's time, from its first statement on
        conn.prelude, conn.prefix = None, _timeout_sql(config["DB_STATEMENT_TIMEOUT_MS"])
        conn.first = conn.retry_if_dead = True
    return conn


# Where a connection carrying a read sent ahead waits for the request's first get_db().
SENT_AHEAD = "cities.sent_ahead"


def send_ahead(app: Flask, statement: str, params: tuple) -> psycopg2.extensions.connection | None:
    """Send `statement` on the kept connection before Flask runs, without waiting for its answer
    (cities.http.early_read), and return that connection: put in the request's environ under
    SENT_AHEAD, it is what the request's first get_db() gets, and the view's `execute` of the
    same statement only waits. None when no healthy connection is kept; one whose send fails is
    dropped, and the request goes on as if none had been."""
    times = _times_from_now(app.config)
    conn = _reuse(app, times[1])
    if conn is None:
        return None
    conn.times = times
    cursor = conn.cursor()
    try:  # on an asynchronous connection, execute() only sends
        psycopg2.extensions.cursor.execute(cursor, conn.prefix + statement, params)
    except psycopg2.Error:
        log.info("kept connection failed while sending a read ahead; it is replaced")
        _discard(conn)
        return None
    conn.ahead = (cursor, statement, params)
    return conn


def drop_unused(conn: psycopg2.extensions.connection | None) -> None:
    """A read sent ahead that no view took (an error before it, or not the request's read) is
    dropped with its connection, so nothing pending reaches the next request."""
    if conn is not None:
        _discard(conn)


def _request_times(config: Mapping[str, Any]) -> tuple[float, float]:
    """(end of the connect budget, deadline) of this request, fixed at its first connection
    attempt and kept across the retries of a refused first statement."""
    times = g.get("db_times")
    if times is None:
        times = g.db_times = _times_from_now(config)
    return times


def _times_from_now(config: Mapping[str, Any]) -> tuple[float, float]:
    now = time.monotonic()
    return now + config["DB_CONNECT_BUDGET"], now + request_bound(config)


def _sent_ahead(config: Mapping[str, Any]) -> psycopg2.extensions.connection | None:
    """The kept connection carrying this request's first read, sent before Flask ran
    (send_ahead), with the request's times taken then; None if none was sent."""
    if not config.get("DB_CONNECTION_REUSE") or not has_request_context():
        return None
    conn = request.environ.pop(SENT_AHEAD, None)
    if conn is not None:
        g.db_times = conn.times
    return conn


def get_db() -> psycopg2.extensions.connection:
    """This request's connection for reading, opened on first use; every statement has a timeout.

    On a new connection each statement travels as `SET LOCAL statement_timeout = N; <statement>`:
    one message, one implicit transaction, one round trip, and the connection is idle again as
    soon as it answers. A startup `options` parameter would be simpler but poolers such as Neon's
    refuse it. A kept connection (reuse mode) is used the same way (see `_reuse` for one that
    died while idle).
    Every answer is due by the request's deadline (module docstring).
    """
    conn = g.get("db")
    if conn is None:
        config = current_app.config
        url = config.get("DATABASE_URL")
        if not url:
            log.error("DATABASE_URL is not set: the API cannot reach its database")
            raise ServiceUnavailable("The service is not configured: its database URL is missing.")
        g.db_connection_obtained = "failed"  # how: "opened", "reused" or "failed" (request log)
        conn = _sent_ahead(config)
        if conn is not None:
            g.db, g.db_connection_obtained = conn, "reused"
            return conn
        budget_end, deadline = _request_times(config)
        if config.get("DB_CONNECTION_REUSE"):
            conn = _reuse(current_app, deadline)
            if conn is not None:
                g.db, g.db_connection_obtained = conn, "reused"
                return conn
        connecting = time.perf_counter()
        try:
            conn = connect(url, config["DB_CONNECT_TIMEOUT"],
                           budget=budget_end - time.monotonic(), deadline=deadline)
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
        finally:
            g.db_busy = time.perf_counter() - connecting  # a failed connect's time counts too
        conn.busy = g.db_busy
        g.db, g.db_connection_obtained = conn, "opened"
        # Asynchronous, so in autocommit: transactions are explicit (see transaction()).
        conn.prefix = _timeout_sql(config["DB_STATEMENT_TIMEOUT_MS"])
        conn.first = True
    return conn


def transaction() -> psycopg2.extensions.connection:
    """This request's connection inside one transaction, for a write that `commit()` ends.

    `BEGIN` and the timeout ride with the transaction's first statement; without a commit the
    transaction is rolled back at teardown.
    """
    conn = get_db()
    if conn.retry_if_dead:  # a kept connection, still unused: probe it with BEGIN alone
        conn.prefix = None
        _begin(conn, current_app.config["DB_STATEMENT_TIMEOUT_MS"])
    elif conn.prefix:  # reading so far, each statement on its own: begin with the next one
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


def _retry_refused(dispatch: Callable[[], Any]) -> Any:
    """Run the view; while the pooler refuses the request's first statement before forwarding
    it (`NotForwarded`), run it again on a new connection, within the connect budget. A kept
    connection that died under the first statement (`KeptConnectionDied`) is replaced at once."""
    attempt = 0
    while True:
        try:
            return dispatch()
        except NotForwarded as refusal:
            attempt += 1
            conn = g.pop("db", None)
            if conn is not None:
                _discard(conn)
            if isinstance(refusal, KeptConnectionDied):
                continue  # logged where it broke; the next connection is a new one
            delay = _backoff(attempt)
            if time.monotonic() + delay >= g.db_times[0]:
                log.warning("the pooler refused the request's first statement until "
                            "DB_CONNECT_BUDGET ran out: %s", refusal)
                raise ServiceUnavailable("The database is unavailable; retry shortly.") from None
            log.info("the pooler refused the request's first statement before forwarding it "
                     "(%s); retrying", refusal)
            time.sleep(delay)


def init_app(app: Flask) -> None:
    """Keep a connection slot, close connections at teardown, and retry refused first statements
    by wrapping the app's `dispatch_request` (the view is the unit that can run again whole)."""
    app.extensions[_EXTENSION] = KeptConnection()
    app.teardown_appcontext(close_db)
    retrying = functools.partial(_retry_refused, app.dispatch_request)
    app.dispatch_request = retrying  # type: ignore[method-assign]
