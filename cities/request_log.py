"""One JSON log line per request, security headers on every response, secrets masked in logs.

The log line carries what an operator needs to find a request in CloudWatch (method, route
template, status, duration, Lambda request id, whether a database connection was opened) and
nothing a client sent (no paths with ids, no bodies, no headers).
"""

from __future__ import annotations

import json
import logging
import re
import time

from flask import Flask, Response, g, request

from .auth import WRITE_METHODS

log = logging.getLogger("cities")

# user:password@ in URLs, and password=... in key/value connection strings.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(?P<key>password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """Hide credentials of any connection string in `text`; hosts and database names stay."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    return _KV_PASSWORD.sub(r"\g<key>***", text)


class MaskSecrets(logging.Filter):
    """Masks the formatted message and any traceback before a handler sees the record."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_secrets(self._formatter.formatException(record.exc_info))
        return True


def _start_timer() -> None:
    g.started = time.perf_counter()


def _security_headers(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.method in WRITE_METHODS or response.status_code >= 400:
        response.headers["Cache-Control"] = "no-store"
    return response


def _log_request(response: Response) -> Response:
    if not log.isEnabledFor(logging.INFO):
        return response
    started = g.get("started")
    context = request.environ.get("serverless.context")
    entry = {
        "event": "request",
        "method": request.method,
        "route": request.url_rule.rule if request.url_rule else None,
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
        "request_id": getattr(context, "aws_request_id", None),
        "db_connection": g.get("db_state", "none"),
    }
    log.info("%s", json.dumps(entry, separators=(",", ":")))
    return response


def init_app(app: Flask) -> None:
    if not any(isinstance(f, MaskSecrets) for f in log.filters):
        log.addFilter(MaskSecrets())
    app.before_request(_start_timer)
    app.after_request(_security_headers)
    app.after_request(_log_request)
