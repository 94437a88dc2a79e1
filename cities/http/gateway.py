"""Make URLs the API generates match what the client called, behind every Lambda front door.

serverless-wsgi derives SCRIPT_NAME from the Host header: any `*.amazonaws.com` host gets
`/<stage>`. That is right for a REST API (`/dev/cities`), but wrong for an HTTP API on its
`$default` stage (no prefix: serverless-wsgi would produce `/$default/cities`) and for an ALB
(whose events have no stage at all). An HTTP API on a named stage keeps the stage in `rawPath`,
so it is moved from PATH_INFO to SCRIPT_NAME. `API_GATEWAY_BASE_PATH` (a custom domain's base
path mapping) is applied by serverless-wsgi itself and left alone here.

The host in generated URLs is never simply the request's `Host` header, which any client (or
anyone in front of an ALB or the local server) can set: see `public_host`.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cities.http.errors import ServiceUnavailable, error_document

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def script_name_for(event: dict[str, Any], path_info: str) -> tuple[str, str] | None:
    """(SCRIPT_NAME, PATH_INFO) correcting serverless-wsgi's guess, or None to keep it."""
    if os.environ.get("API_GATEWAY_BASE_PATH"):
        return None
    context = event.get("requestContext") or {}
    if context.get("elb"):
        return "", path_info
    if event.get("version") != "2.0":
        return None  # REST API: `path` excludes the stage, which serverless-wsgi adds back.
    stage = context.get("stage") or "$default"
    if stage == "$default":
        return "", path_info
    prefix = f"/{stage}"
    if path_info == prefix or path_info.startswith(prefix + "/"):
        return prefix, path_info[len(prefix) :] or "/"
    return "", path_info


def bad_event_response(message: str) -> dict[str, Any]:
    """A JSON 400 for an event serverless-wsgi cannot translate, valid for every front door."""
    body = json.dumps(error_document(400, message))
    return {
        "statusCode": 400,
        "statusDescription": "400 Bad Request",
        "headers": {
            "Content-Type": "application/json",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
        "body": body,
        "isBase64Encoded": False,
    }


# A host name or IPv4 address with an optional port, or the bracketed IPv6 loopback: enough to
# tell a host from a placeholder ("offlineContext_domainName") or a smuggled "a@b" or "a/b".
_HOST = re.compile(r"(?P<name>[A-Za-z0-9.-]+|\[::1\])(?::[0-9]{1,5})?")
# Names of this very machine: a URL naming one can only lead a client back to its own machine.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
# environ key: True when generated URLs may be absolute (their host is trusted).
PUBLIC_HOST = "cities.public_host"


def public_host(environ: Mapping[str, Any], public_hosts: Iterable[str] = ()) -> str | None:
    """The host generated URLs may name, or None: they are then relative (`/cities/4`).

    Trusted, in order: an `X-Forwarded-Host` listed in `PUBLIC_HOSTS` (a CDN in front, such as
    the stage's CloudFront, which sends the host its clients called); the domain API Gateway or
    a Function URL reports for itself (`requestContext.domainName`, which the client cannot
    choose); a `Host` listed in `PUBLIC_HOSTS`; a `Host` naming this machine (localhost).
    Anything else, such as the `Host` a client sends through an ALB, never reaches a URL.
    """
    forwarded = environ.get("HTTP_X_FORWARDED_HOST")
    if public_hosts and isinstance(forwarded, str) and forwarded.lower() in public_hosts:
        return forwarded.lower()
    event = environ.get("serverless.event")
    context = event.get("requestContext") if isinstance(event, dict) else None
    if isinstance(context, dict) and not context.get("elb"):
        domain = context.get("domainName")
        # serverless-offline reports a placeholder ("offlineContext_domainName"), not a host.
        if isinstance(domain, str) and _HOST.fullmatch(domain):
            return domain
    host = environ.get("HTTP_HOST")
    if not isinstance(host, str):
        return None
    match = _HOST.fullmatch(host)
    if match is None:
        return None
    if host.lower() in public_hosts or match["name"].lower() in LOOPBACK_NAMES:
        return host
    return None


def is_host(text: str) -> bool:
    """Whether `text` is a host as `public_host` accepts one (config checks PUBLIC_HOSTS so)."""
    return _HOST.fullmatch(text) is not None


def absolute_urls(environ: Mapping[str, Any]) -> bool:
    """Whether URLs built for this request may be absolute (`url_for(..., _external=...)`)."""
    return environ.get(PUBLIC_HOST, False)


# When the request reached the app (time.perf_counter()), for the request log's duration.
STARTED = "cities.started"


class GatewayPaths:
    """WSGI middleware fixing what serverless-wsgi gets wrong for Lambda events.

    Besides the URL prefix (`script_name_for`), it drops `Transfer-Encoding`: the front door has
    already de-chunked the body, serverless-wsgi sets an exact CONTENT_LENGTH, and Werkzeug would
    otherwise ignore that length and read a chunked body as empty. Under serverless-offline
    (`make offline`, plain HTTP) it makes the scheme http: serverless-wsgi assumes https when no
    X-Forwarded-Proto came, right behind API Gateway but unfollowable there. Being the first code
    every request runs, it also stamps the request's start (`STARTED`) and decides which host
    URLs may name (`public_host`), which spares Flask hooks.
    """

    def __init__(self, app: WSGIApp, config: Mapping[str, Any] | None = None) -> None:
        self.app = app
        self.config = config if config is not None else {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ[STARTED] = time.perf_counter()
        host = public_host(environ, self.config.get("PUBLIC_HOSTS", ()))
        if host is not None:
            environ["HTTP_HOST"] = host
        environ[PUBLIC_HOST] = host is not None
        event = environ.get("serverless.event")
        if isinstance(event, dict):
            fixed = script_name_for(event, environ.get("PATH_INFO", ""))
            if fixed is not None:
                environ["SCRIPT_NAME"], environ["PATH_INFO"] = fixed
            if os.environ.get("IS_OFFLINE") == "true" and "HTTP_X_FORWARDED_PROTO" not in environ:
                environ["wsgi.url_scheme"] = "http"  # serverless-offline sets IS_OFFLINE
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)


def _refuse_lambda_events() -> None:
    """With API_GATEWAY_BASE_PATH out of range serverless-wsgi cannot tell the base path from the
    route: a request that came through Lambda answers 503 rather than a misleading 404."""
    from flask import request

    if "serverless.event" in request.environ:
        raise ServiceUnavailable(
            "The service is not configured: its API Gateway base path setting is invalid."
        )


def init_app(app: Any) -> None:
    """Refuse Lambda requests while API_GATEWAY_BASE_PATH is unusable (nothing otherwise)."""
    if "API_GATEWAY_BASE_PATH" in app.config.get("UNUSABLE_SETTINGS", ()):
        app.before_request(_refuse_lambda_events)
