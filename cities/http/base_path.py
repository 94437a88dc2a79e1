"""Make the paths of the URLs the API generates match what the client called, behind every
Lambda front door: a WSGI middleware correcting serverless-wsgi's SCRIPT_NAME.

serverless-wsgi derives SCRIPT_NAME from the Host header: any `*.amazonaws.com` host gets
`/<stage>`. That is right for a REST API (`/dev/cities`), but wrong for an HTTP API on its
`$default` stage (no prefix: serverless-wsgi would produce `/$default/cities`) and for an ALB
(whose events have no stage at all). An HTTP API on a named stage keeps the stage in `rawPath`,
so it is moved from PATH_INFO to SCRIPT_NAME. `API_GATEWAY_BASE_PATH` (a custom domain's base
path mapping) is applied by serverless-wsgi itself and left alone here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cities.http.public_host import PUBLIC_HOST, public_host

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# When the request reached the app (time.perf_counter()), for the request log's duration.
STARTED = "cities.started"


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


class GatewayPaths:
    """WSGI middleware fixing what serverless-wsgi gets wrong for Lambda events.

    Besides the URL prefix (`script_name_for`), it drops `Transfer-Encoding`: the front door has
    already de-chunked the body, serverless-wsgi sets an exact CONTENT_LENGTH, and Werkzeug would
    otherwise ignore that length and read a chunked body as empty. Under serverless-offline
    (`make offline`, plain HTTP) it makes the scheme http: serverless-wsgi assumes https when no
    X-Forwarded-Proto came, right behind API Gateway but unfollowable there. Being the first code
    every request runs, it also stamps the request's start (`STARTED`) and decides which host
    URLs may name (cities.http.public_host), which spares Flask hooks.
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
