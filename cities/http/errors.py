"""Every failure becomes the one JSON error shape; nothing else ever reaches a client.

`{"error": {"code": ..., "message": ..., "details": [...]}}`. Messages are written here, never
copied from an exception: driver errors can carry SQL, host names or parts of a connection string.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg2
from flask import Flask, Response, g, jsonify
from psycopg2 import errors as pgerrors
from werkzeug.exceptions import HTTPException

log = logging.getLogger("cities")

RETRY_AFTER_SECONDS = "5"

# The largest request body read (Flask's MAX_CONTENT_LENGTH, set by create_app); past it, 413.
MAX_BODY_BYTES = 64 * 1024
BODY_LIMIT = f"{MAX_BODY_BYTES // 1024} KiB"  # as messages and the OpenAPI document say it

# Status codes the API answers with, and the `code` each one carries. The OpenAPI document's
# `code` enum is these values in this order (the order they were added): a new one goes last.
CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    503: "service_unavailable",
    500: "internal_error",
    412: "precondition_failed",
    428: "precondition_required",
    429: "too_many_requests",
}

MESSAGES: dict[int, str] = {
    400: "The request could not be understood.",
    401: "A valid API key is required.",
    403: "The credential is valid but does not allow this request.",
    404: "No resource at this URL.",
    405: "This method is not allowed at this URL.",
    409: "The request conflicts with the current state of the resource.",
    412: "The resource has changed since the version the request names (If-Match); "
    "nothing was written: read it again.",
    413: f"The request body is larger than {BODY_LIMIT}.",
    415: "The request body must be JSON (Content-Type: application/json).",
    422: "The request is well-formed but its content is invalid.",
    428: "This server requires conditional writes: send If-Match with the ETag of the version "
    "you are changing.",
    429: "This writer has used its quota of writes for the current window; nothing was written: "
    "retry after the number of seconds Retry-After says.",
    500: "An internal error occurred.",
    503: "The service is temporarily unavailable; retry shortly.",
}

# The commands this checkout has: `make migrate` locally, `make migrate-deployed` for a stage.
SCHEMA_MISSING = (
    "The database schema is missing or out of date: run the migrate function "
    "(`make migrate` locally, `make migrate-deployed STAGE=<stage>` in AWS)."
)


class ApiError(Exception):
    """An error the API answers on purpose, with a status and a client-safe message."""

    status = 500

    def __init__(
        self,
        message: str | None = None,
        details: Iterable[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or MESSAGES[self.status]
        self.details = list(details)
        self.headers = dict(headers or {})
        super().__init__(self.message)


class BadRequest(ApiError):
    status = 400


def bearer_challenge(error: str | None = None, description: str | None = None,
                     scope: str | None = None) -> str:
    """An RFC 6750 `WWW-Authenticate` value: no `error` when no credential was sent (3.1)."""
    params = [("realm", "cities"), ("error", error), ("error_description", description),
              ("scope", scope)]
    # Quoted strings may hold no `"` or `\\` (descriptions are ours, but the code says so).
    return "Bearer " + ", ".join(
        f'{name}="{value.replace(chr(34), "").replace(chr(92), "")}"'
        for name, value in params if value)


class Unauthorized(ApiError):
    status = 401

    def __init__(self, message: str | None = None, error: str | None = None) -> None:
        challenge = bearer_challenge(error, message if error else None)
        super().__init__(message, headers={"WWW-Authenticate": challenge})


class Forbidden(ApiError):
    """A valid token without the scope the request needs (RFC 6750 insufficient_scope)."""

    status = 403

    def __init__(self, message: str, scope: str) -> None:
        challenge = bearer_challenge("insufficient_scope", message, scope)
        super().__init__(message, headers={"WWW-Authenticate": challenge})


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PreconditionFailed(ApiError):
    status = 412


class PreconditionRequired(ApiError):
    status = 428


class TooManyRequests(ApiError):
    """A write past its writer's quota (cities.http.quota); `Retry-After` is the seconds left in
    the writer's window."""

    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(headers={"Retry-After": str(retry_after)})


class UnsupportedMediaType(ApiError):
    status = 415


class ValidationFailed(ApiError):
    status = 422


class ServiceUnavailable(ApiError):
    """A 503. Its `cause` feeds the per-request metric (cities.ops.metrics): the owner's alarm
    tells a database outage from a deploy's configuration mistake or missing migrations."""

    status = 503

    def __init__(self, message: str | None = None, cause: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": RETRY_AFTER_SECONDS})
        self.cause = cause or unavailable_cause(self.message)


def unavailable_cause(message: str) -> str:
    """`schema`, `configuration` or `database`, from the 503's own fixed message (written in
    this package, never a driver's text), so each raise site need not name its cause."""
    if message == SCHEMA_MISSING:
        return "schema"
    if message.startswith(("The service is not configured", "Writes are disabled")):
        return "configuration"
    return "database"


def error_document(
    status: int, message: str, details: Iterable[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The error body, also used outside Flask (handler.api answering an untranslatable event)."""
    code = CODES.get(status) or ("internal_error" if status >= 500 else "bad_request")
    return {"error": {"code": code, "message": message, "details": list(details)}}


def error_response(
    status: int,
    message: str,
    details: Iterable[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> Response:
    response = jsonify(error_document(status, message, details))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def handle_api_error(error: ApiError) -> Response:
    if isinstance(error, ServiceUnavailable):
        g.unavailable_cause = error.cause
    return error_response(error.status, error.message, error.details, error.headers)


def handle_http_exception(error: HTTPException) -> Response:
    """Werkzeug's own errors (routing, 413, ...) keep their status and headers such as `Allow`."""
    status = error.code or 500
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    message = MESSAGES.get(status)
    if status == 405 and "Allow" in headers:
        message = f"This method is not allowed at this URL; allowed: {headers['Allow']}."
    if message is None:
        message = "The request could not be processed." if status < 500 else MESSAGES[500]
    return error_response(status, message, headers=headers)


def handle_database_error(error: psycopg2.Error) -> Response:
    """Map driver errors to 503 (retryable) or 500, logging what the client must not see."""
    if isinstance(error, pgerrors.UndefinedTable | pgerrors.UndefinedColumn):
        log.error("database schema missing (%s): run the migrate function", type(error).__name__)
        return handle_api_error(ServiceUnavailable(SCHEMA_MISSING))
    if isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError):
        log.warning("database unavailable: %s", type(error).__name__)
        return handle_api_error(ServiceUnavailable("The database is unavailable; retry shortly."))
    log.error("database error %s (SQLSTATE %s)", type(error).__name__, error.pgcode)
    return error_response(500, MESSAGES[500])


def handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error: %s", type(error).__name__)
    return error_response(500, MESSAGES[500])


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(psycopg2.Error, handle_database_error)
    app.register_error_handler(Exception, handle_unexpected)
