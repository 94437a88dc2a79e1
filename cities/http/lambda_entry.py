"""What `handler.api` does with each Lambda HTTP event: serverless-wsgi translates it for the
app, and on a kept connection an item's read is sent first, from the raw event
(cities.http.early_read), so its round trip overlaps that translation too."""

from __future__ import annotations

import logging
from typing import Any

import serverless_wsgi
from flask import Flask

# Where cities.http.early_read.install puts its middleware (with DB_CONNECTION_REUSE only).
EARLY_READ = "cities.early_read"


def serve(app: Flask, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Serve one HTTP event. The app answers every request itself; an exception here means
    serverless-wsgi could not translate the event (say, a body flagged base64 that is not)."""
    ahead = app.extensions.get(EARLY_READ)
    try:
        if ahead is not None:
            ahead.send_for_event(event)
        return serverless_wsgi.handle_request(app, event, context)
    except Exception as exc:
        logging.getLogger("cities").warning("untranslatable event: %s", type(exc).__name__)
        from cities.http.lambda_refusals import bad_event_response  # only on this failure

        return bad_event_response("The request could not be read.")
    finally:
        if ahead is not None:
            ahead.forget(event)
