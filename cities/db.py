"""The database connection's life: at most one per request, opened lazily, always closed.

Lambda freezes a container between invocations, so a connection kept open across requests goes
stale without notice and pins a slot on the server; a request opens its own connection when it
first needs one and closes it in teardown, whatever happened. Requests that need no data
(`/openapi.json`, an unknown route, a body refused before any query) open none.

Opt-in (`DB_CONNECTION_REUSE`): a warm container keeps one connection between requests, because
connecting to a hosted Postgres costs TCP + TLS + SCRAM round trips on every request. The kept
connection is handed out again only when it looks healthy without a round trip (open, idle for
less than `DB_CONNECTION_MAX_IDLE` seconds, no transaction, and nothing unread on its socket: a
backend that was terminated or a server that went down leaves a notice or EOF there), otherwise it
is dropped and a new one opened before anything was sent. At the end of a request a clean
connection is kept (an open read transaction is rolled back first); after any database error or
unhandled exception it is closed, so no transaction or broken state reaches the next request.
A connection that dies silently while kept (no notice, no EOF) fails its next request once with
503 and is then replaced.
"""

from __future__ import annotations

import logging
import select
import threading
import time

import psycopg2
import psycopg2.extensions
from flask import Flask, current_app, g

from .errors import ServiceUnavailable

log = logging.getLogger("cities")

APPLICATION_NAME = "cities"
_EXTENSION = "cities.kept_connection"
_IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE
_INTRANS = psycopg2.extensions.TRANSACTION_STATUS_INTRANS


def connect(url: str, connect_timeout: int, application_name: str = APPLICATION_NAME):
    """A new connection; keyword settings take precedence over those in the URL."""
    return psycopg2.connect(
        url, connect_timeout=connect_timeout, application_name=application_name
    )


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


def _reusable(conn: psycopg2.extensions.connection) -> bool:
    """End a clean request's transaction; False when the connection must not be kept."""
    if conn.closed:
        return False
    status = conn.get_transaction_status()
    if status == _INTRANS:  # a read (or an uncommitted write): end it, never carry it over
        try:
            conn.rollback()
        except psycopg2.Error:
            return False
        status = conn.get_transaction_status()
    return status == _IDLE


def get_db() -> psycopg2.extensions.connection:
    """This request's connection: the kept one when reuse is on and it is healthy, else new."""
    conn = g.get("db")
    if conn is None:
        url = current_app.config.get("DATABASE_URL")
        if not url:
            log.error("DATABASE_URL is not set: the API cannot reach its database")
            raise ServiceUnavailable("The service is not configured: its database URL is missing.")
        if current_app.config.get("DB_CONNECTION_REUSE"):
            conn = kept_connection(current_app).take(current_app.config["DB_CONNECTION_MAX_IDLE"])
            if conn is not None:
                g.db = conn
                return conn
        try:
            conn = connect(url, current_app.config["DB_CONNECT_TIMEOUT"])
        except psycopg2.OperationalError as exc:
            log.warning("cannot connect to the database: %s", type(exc).__name__)
            raise ServiceUnavailable("The database is unavailable; retry shortly.") from None
        g.db = conn
    return conn


def close_db(exc: BaseException | None = None) -> None:
    """Close this request's connection, if it opened one; uncommitted work is rolled back.

    With reuse on, a connection that ended the request cleanly is kept instead.
    """
    conn = g.pop("db", None)
    if conn is None:
        return
    if current_app.config.get("DB_CONNECTION_REUSE") and exc is None and _reusable(conn):
        kept_connection(current_app).give_back(conn)
        return
    _discard(conn)


def init_app(app: Flask) -> None:
    app.extensions[_EXTENSION] = KeptConnection()
    app.teardown_appcontext(close_db)
