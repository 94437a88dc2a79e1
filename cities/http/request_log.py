"""One JSON log line per request, security headers on every response, secrets masked in logs
(by cities.ops.secrets_mask).

The log line carries what an operator needs to find a request in CloudWatch (method, route
template, status, duration, Lambda and API Gateway request ids, whether a database connection was
opened) and nothing a client sent (no paths with ids, no bodies, no headers).
"""

from __future__ import annotations

import json
import logging
import time

from flask import Flask, Request, Response, current_app, g, request

from cities.http.auth import WRITE_METHODS
from cities.http.base_path import STARTED
from cities.ops import metrics
from cities.ops.secrets_mask import MaskSecrets

log = logging.getLogger("cities")

# Built once: json.dumps with separators builds a new encoder on every call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


# How caches may keep a response (RFC 9111). Without Cache-Control a shared cache picks its own
# lifetime (Varnish 120 s, nginx's proxy_cache_valid) and serves old versions after a write.
NO_STORE = "no-store"
# A read may be stored but never reused unasked: the cache revalidates with the ETag (a 304
# without body) or fetches anew.
READS = "no-cache"


def shared_reads(max_age: int) -> str:
    """An item's or a list's read when SHARED_CACHE_MAX_AGE opts in: any cache may reuse it for
    `max_age` s, then serve it for as long again while one request fetches the next version in
    the background, so no reader waits for a database waking up and the staleness stays 2N."""
    return f"public, max-age={max_age}, stale-while-revalidate={max_age}"


def cache_control(method: str, status: int, chosen: str | None) -> str:
    """A response's Cache-Control: writes and errors are never stored (a cached 404 or 503 would
    outlive its cause); a read keeps what its route chose (`/health`, the docs' assets, an item
    or a list under `shared_reads`), else `READS`."""
    if method in WRITE_METHODS or status >= 400:
        return NO_STORE
    return chosen or READS


def _after_request(response: Response) -> Response:
    """The response's headers, then its log line and metrics: one hook, as it runs per request."""
    req = request._get_current_object()  # one context lookup, not one per attribute
    _set_headers(req, response)
    _record(req, response)
    return response


def _set_headers(req: Request, response: Response) -> None:
    """Security and cache headers on every response."""
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Cache-Control"] = cache_control(
        req.method, response.status_code, headers.get("Cache-Control")
    )


def _record(req: Request, response: Response) -> None:
    """The request's log line and its metrics record, each when enabled, with one duration."""
    logged = log.isEnabledFor(logging.INFO)
    measured = current_app.config.get("METRICS")
    if not (logged or measured):
        return
    started = req.environ.get(STARTED)
    duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
    if logged:
        _log_request(req, response, duration_ms)
    if measured:
        _emit_metrics(req, response, duration_ms)


def _emit_metrics(req: Request, response: Response, duration_ms: float | None) -> None:
    """The request's EMF record (cities.ops.metrics): latency, database time, status, cause."""
    rule = req.url_rule
    conn = g.get("db")
    busy = conn.busy if conn is not None else g.get("db_busy", 0.0)
    metrics.emit(metrics.record(
        rule.rule if rule else None,
        response.status_code,
        duration_ms if duration_ms is not None else 0.0,
        round(busy * 1000, 2),
        g.get("unavailable_cause") if response.status_code == 503 else None,
    ))


def _log_request(req: Request, response: Response, duration_ms: float | None) -> None:
    rule = req.url_rule
    entry = {
        "event": "request",
        "method": req.method,
        "route": rule.rule if rule else None,
        "status": response.status_code,
        "duration_ms": duration_ms,
        "request_id": getattr(req.environ.get("serverless.context"), "aws_request_id", None),
        # API Gateway's own id of the request: joins this line to the HTTP API's access log.
        "gateway_request_id": _gateway_request_id(req.environ.get("serverless.event")),
        "db_connection": g.get("db_connection_obtained", "none"),
    }
    writer = g.get("writer")
    if writer is not None:  # a write that passed: its key's name or token's subject, never a key
        entry["writer"], entry["auth"] = writer
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
    app.after_request(_after_request)
