"""One JSON log line per request, security headers on every response, secrets masked in logs.

The log line carries what an operator needs to find a request in CloudWatch (method, route
template, status, duration, Lambda and API Gateway request ids, whether a database connection was
opened) and nothing a client sent (no paths with ids, no bodies, no headers).
"""

from __future__ import annotations

import json
import logging
import re
import time
from urllib.parse import unquote

from flask import Flask, Request, Response, g, request

from .auth import WRITE_METHODS
from .gateway import STARTED

log = logging.getLogger("cities")

# user:password@ in URLs (up to the token's last @: a password may hold an unencoded @ or /),
# and password=... in key/value connection strings.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^\s\"'<>]*@", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(?P<key>password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)
_SEPARATORS = re.compile(r"[@:/?#\s]+")
_MIN_FRAGMENT = 3  # shorter pieces of a password would mask ordinary words everywhere
# Pieces of the configured secrets (passwords, API keys): libpq repeats parts of a malformed URL
# in its errors without the scheme (`could not translate host name "word@host"`).
_known_secrets: set[str] = set()


# Built once: json.dumps with separators builds a new encoder on every call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def secret_parts(value: str) -> set[str]:
    """The parts of a secret that must never be shown: a URL's password and each piece of it
    between separators (for a malformed URL libpq quotes such pieces), or a whole key."""
    if "://" in value or "@" in value:
        userinfo = value.split("://", 1)[-1].rpartition("@")[0]  # up to the last @
        password = userinfo.partition(":")[2]
    elif "=" in value:
        kv = _KV_PASSWORD.search(value)
        password = kv[2].strip("'") if kv else ""
    else:
        password = value.strip()  # an API key
    decoded = unquote(password)
    pieces = {password, decoded, *_SEPARATORS.split(password), *_SEPARATORS.split(decoded)}
    return {piece for piece in pieces if len(piece) >= _MIN_FRAGMENT}


def remember_secrets(*values: str | None) -> None:
    """Mask these secrets' parts in every later log line and masked error (configured URLs,
    API keys); called wherever configuration is read."""
    for value in values:
        if value:
            _known_secrets.update(secret_parts(value))


def mask_secrets(text: str, *secrets: str | None) -> str:
    """Hide credentials of any connection string in `text`, and every part of the remembered
    secrets and of `secrets`; hosts and database names stay.

    Most log lines hold neither form; the substring checks spare them both regex passes (this
    runs on every request's log line).
    """
    known = _known_secrets.union(*(secret_parts(s) for s in secrets if s)) if secrets else (
        _known_secrets
    )
    for part in sorted((p for p in known if p in text), key=len, reverse=True):
        text = text.replace(part, "***")
    if "@" in text:
        text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    if "password" in text.lower():
        text = _KV_PASSWORD.sub(r"\g<key>***", text)
    return text


def masked_error(error: BaseException, *secrets: str | None) -> str:
    """`Type: message` of an error that leaves the program (a Lambda's failure, a CLI's exit),
    with every secret masked."""
    return mask_secrets(f"{type(error).__name__}: {error}".strip(), *secrets)


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


# How caches may keep a response (RFC 9111). Without Cache-Control a shared cache picks its own
# lifetime (Varnish 120 s, nginx's proxy_cache_valid) and serves old versions after a write.
NO_STORE = "no-store"
# A read may be stored but never reused unasked: the cache revalidates with the ETag (a 304
# without body) or fetches anew. The one place a per-stage opt-in `max-age` would go.
READS = "no-cache"


def cache_control(method: str, status: int, chosen: str | None) -> str:
    """A response's Cache-Control: writes and errors are never stored (a cached 404 or 503 would
    outlive its cause); a read keeps what its route chose (`/health`, the docs' assets), else
    `READS`."""
    if method in WRITE_METHODS or status >= 400:
        return NO_STORE
    return chosen or READS


def _finish(response: Response) -> Response:
    """Security and cache headers on every response, then its log line (one hook: this runs
    per request)."""
    req = request._get_current_object()  # one context lookup, not one per attribute
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Cache-Control"] = cache_control(
        req.method, response.status_code, headers.get("Cache-Control")
    )
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
