"""With DB_CONNECTION_REUSE, an item's read is sent before Flask runs, so its round trip overlaps
Flask's own work.

On a kept connection `GET /<plural>/<id>` is one round trip, and what Flask does before the view
sends it (the request context, routing, hooks) is about a third of the request's instructions:
at 1 ms from the database that CPU is a large part of the time over the round trip
(docs/benchmarks.md, sections 9 and Design measurements). This WSGI middleware, inside
GatewayPaths (so it sees the path without its base path), takes the kept connection for such a
request and sends the item's SELECT at once (cities.db.connection.send_ahead); the view's
`store.get` then only waits for the answer.

Reads are public and change nothing, so sending one before the request's checks shows a client
nothing it could not have asked for; a request that ends without taking the answer (an error
before the view) drops that connection. Only resources served by the default `get_item` are
read ahead: a resource with views of its own may read something else first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from cities.db.connection import drop_unused, send_ahead
from cities.http.listing import canonical_id
from cities.http.resource_api import ResourceViews

READS = ("GET", "HEAD")


class SendReadsAhead:
    """The middleware: `app` is the Flask app whose kept connection and resources it uses."""

    def __init__(self, wsgi_app: Callable[..., Any], app: Flask) -> None:
        self.wsgi_app, self.app = wsgi_app, app
        self.selects = {  # "/cities/": CITY.select_by_id, for each resource read the default way
            f"/{resource.plural}/": resource.select_by_id
            for resource in app.config["RESOURCES"]
            if (resource.views or ResourceViews).get_item is ResourceViews.get_item
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable:
        if environ.get("REQUEST_METHOD") in READS:
            path = environ.get("PATH_INFO", "")
            prefix, _, raw = path.rpartition("/")
            select = self.selects.get(prefix + "/")
            item_id = canonical_id(raw) if select else None
            if item_id is not None:  # what the view's item_id_of will find
                send_ahead(self.app, environ, select, (item_id,))
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            drop_unused(environ)
