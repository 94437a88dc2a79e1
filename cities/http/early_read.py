"""With DB_CONNECTION_REUSE, an item's read is sent before Flask runs, so its round trip
overlaps the work in front of the view.

On a kept connection `GET /<plural>/<id>` is one round trip, and what runs before the view sends
it (serverless-wsgi's translation of the Lambda event, Flask's request context, routing, hooks)
is about half of the request's instructions: at 1 ms from the database that CPU is a large part
of the time over the round trip (docs/benchmarks.md, sections 9 and Design measurements). So the
Lambda entry (cities.http.lambda_entry) sends the item's SELECT from the raw event, before
serverless-wsgi runs (`send_for_event`), and this WSGI middleware, inside GatewayPaths (so it
sees the path without its stage or base path), confirms it is the request's read, or sends it
itself when the entry did not (a local server, an event whose path it could not read). The
view's `store.get` then only waits for the answer (cities.db.connection.send_ahead).

Reads are public and change nothing, so sending one before the request's checks shows a client
nothing it could not have asked for. A read the middleware does not confirm (the event's path
only looked like an item's URL) and one no view takes (an error before the view) are dropped
with their connection, so nothing pending reaches another request. Only resources served by the
default `get_item` are read ahead: a resource with views of its own may read something else first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import psycopg2
from flask import Flask

from cities.db.connection import SENT_AHEAD, drop_unused, send_ahead
from cities.http.lambda_entry import EARLY_READ
from cities.http.listing import canonical_id
from cities.http.resource_api import ResourceViews

READS = ("GET", "HEAD")

Read = tuple[str, tuple]  # a statement and its parameters


class SendReadsAhead:
    """The middleware: `app` is the Flask app whose kept connection and resources it uses."""

    def __init__(self, wsgi_app: Callable[..., Any], app: Flask) -> None:
        self.wsgi_app, self.app = wsgi_app, app
        self.selects = {  # "cities": CITY.select_by_id, for each resource read the default way
            resource.plural: resource.select_by_id
            for resource in app.config["RESOURCES"]
            if (resource.views or ResourceViews).get_item is ResourceViews.get_item
        }
        # Reads the Lambda entry sent, by the id() of their event, until this middleware or the
        # entry itself (once the request is over) takes them.
        self.sent: dict[int, psycopg2.extensions.connection] = {}

    def read_for(self, method: Any, path: str, anywhere: bool = False) -> Read | None:
        """The statement that `method path` reads first, if it is an item's read: `path` is
        `/<plural>/<id>` (`anywhere`: ends so), the id written the one way the view accepts."""
        if method not in READS:
            return None
        head, _, raw = path.rpartition("/")
        front, _, plural = head.rpartition("/")
        select = self.selects.get(plural) if anywhere or not front else None
        item_id = canonical_id(raw) if select else None
        return None if item_id is None else (select, (item_id,))

    def send_for_event(self, event: Any) -> None:
        """From the Lambda entry, before serverless-wsgi: send the read an event's path names.

        The path is the client's (a stage or base path may precede `/<plural>/<id>`); the
        middleware checks it against the path the app routes."""
        method, path = event_method_and_path(event)
        if not isinstance(path, str):
            return
        read = self.read_for(method, path, anywhere=True)
        conn = send_ahead(self.app, *read) if read else None
        if conn is not None:
            self.sent[id(event)] = conn

    def forget(self, event: Any) -> None:
        """From the Lambda entry, after the request: a read sent for `event` that the middleware
        never took (serverless-wsgi refused the event) is dropped with its connection."""
        drop_unused(self.sent.pop(id(event), None))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable:
        read = self.read_for(environ.get("REQUEST_METHOD"), environ.get("PATH_INFO", ""))
        conn = self.sent.pop(id(environ.get("serverless.event")), None)
        if conn is not None and conn.ahead[1:] != read:
            drop_unused(conn)  # the event's path only looked like an item's URL
            conn = None
        if conn is None and read is not None:
            conn = send_ahead(self.app, *read)
        if conn is not None:
            environ[SENT_AHEAD] = conn
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            drop_unused(environ.pop(SENT_AHEAD, None))


def install(app: Flask) -> None:
    """Wrap the app's WSGI callable (inside GatewayPaths, which create_app adds next) and let
    the Lambda entry find the middleware."""
    ahead = app.extensions[EARLY_READ] = SendReadsAhead(app.wsgi_app, app)
    app.wsgi_app = ahead  # type: ignore[method-assign]


def event_method_and_path(event: Any) -> tuple[Any, Any]:
    """(method, path) of an HTTP API or Function URL event (payload 2.0), or of a REST API or
    ALB one (1.0); None where the event has none, or is no event at all (serverless-wsgi then
    decides what it is)."""
    if not isinstance(event, dict):
        return None, None
    if event.get("version") == "2.0":
        context = event.get("requestContext")
        http = context.get("http") if isinstance(context, dict) else None
        return (http.get("method") if isinstance(http, dict) else None), event.get("rawPath")
    return event.get("httpMethod"), event.get("path")
