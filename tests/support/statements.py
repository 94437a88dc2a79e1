"""A connection that keeps every statement it sends, as sent, so a test can EXPLAIN the exact
SQL the API's store ran (the plan tests of tests/db)."""

from __future__ import annotations

import psycopg2
from psycopg2.extras import LoggingConnection


class Captured(list):
    """The statements, in order (LoggingConnection writes each one to its log's `write`)."""

    def write(self, text: str) -> None:
        self.append(text)


def logged_connection(url: str) -> tuple[LoggingConnection, Captured]:
    """An autocommit connection to `url` and the list its statements land in."""
    conn = psycopg2.connect(url, connection_factory=LoggingConnection)
    captured = Captured()
    conn.initialize(captured)
    conn.autocommit = True
    return conn, captured
