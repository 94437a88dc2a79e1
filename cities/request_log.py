"""One JSON log line per request, security headers on every response, secrets masked in logs
(by cities.secrets_mask).

The log line carries what an operator needs to find a request in CloudWatch (method, route
template, status, duration, Lambda and API Gateway request ids, whether a database connection was
opened) and nothing a client sent (no paths with ids, no bodies, no headers).
"""

from __future__ import annotations

import json
import logging
import time

from flask import Flask, Request, Response, g, request

from .auth import WRITE_METHODS
from .gateway import STARTED

# Masking lives in secrets_mask; these names stay importable from here.
from .secrets_mask import (  # noqa: F401
    MaskSecrets,
    mask_secrets,
    masked_error,
    remember_secrets,
    secret_parts,
)

log = logging.getLogger("cities")

# Built once: json.dumps with separators builds a new encoder on every call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def _finish(response: Response) -> Response:
    """Security headers on every response, then its log line (one hook: this runs per request)."""
    req = request._get_current_object()  # one context lookup, not one per attribute
    response.headers["X-Content-Type-Options"] = "nosniff"
    if req.method in WRITE_METHODS or response.status_code >= 400:
        response.headers["Cache-Control"] = "no-store"
    if log.isEnabledFor(logging.INFO):
        _log_request(req, response)
    return response


def _log_request(req: Request, response: Response) -> None:
    started = req.environ.get(STARTED)
    rule = req.url_rule
    entry = {
        "event": "request",
        "method": req.method,
        "route": rule.rule if rule else None,
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
        "request_id": getattr(req.environ.get("serverless.context"), "aws_request_id", None),
        # API Gateway's own id of the request: joins this line to the HTTP API's access log.
        "gateway_request_id": _gateway_request_id(req.environ.get("serverless.event")),
        "db_connection": g.get("db_state", "none"),
    }
    # log.info() would first walk the stack to find its caller (findCaller): on every request
    # that costs more than the line itself, and the caller is always this function.
    line = _COMPACT_JSON.encode(entry)
    record = log.makeRecord(log.name, logging.INFO, __file__, 0, line, None, None, "_log_request")
    log.handle(record)


def _gateway_request_id(event: object) -> str | None:
    context = event.get("requestContext") if isinstance(event, dict) else None
    request_id = context.get("requestId") if isinstance(context, dict) else None
    return request_id if isinstance(request_id, str) else None


def init_app(app: Flask) -> None:
    if not any(isinstance(f, MaskSecrets) for f in log.filters):
        log.addFilter(MaskSecrets())
    app.after_request(_finish)
