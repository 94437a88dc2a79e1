"""The database connection's life: at most one per request, opened lazily, always closed.

Lambda freezes a container between invocations, so a connection kept open across requests goes
stale without notice and pins a slot on the server; a request opens its own connection when it
first needs one and closes it in teardown, whatever happened. Requests that need no data
(`/openapi.json`, an unknown route, a body refused before any query) open none.
"""

from __future__ import annotations

import logging

import psycopg2
import psycopg2.extensions
from flask import Flask, current_app, g

from .errors import ServiceUnavailable

log = logging.getLogger("cities")

APPLICATION_NAME = "cities"


def connect(url: str, connect_timeout: int, application_name: str = APPLICATION_NAME):
    """A new connection; keyword settings take precedence over those in the URL."""
    return psycopg2.connect(
        url, connect_timeout=connect_timeout, application_name=application_name
    )


def get_db() -> psycopg2.extensions.connection:
    """This request's connection, opened on first use."""
    conn = g.get("db")
    if conn is None:
        url = current_app.config.get("DATABASE_URL")
        if not url:
            log.error("DATABASE_URL is not set: the API cannot reach its database")
            raise ServiceUnavailable("The service is not configured: its database URL is missing.")
        try:
            conn = connect(url, current_app.config["DB_CONNECT_TIMEOUT"])
        except psycopg2.OperationalError as exc:
            log.warning("cannot connect to the database: %s", type(exc).__name__)
            raise ServiceUnavailable("The database is unavailable; retry shortly.") from None
        g.db = conn
    return conn


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
