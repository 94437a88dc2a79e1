"""The host the URLs this API generates (`Location`, `Link`) may name, or none (then relative).

Never simply the request's `Host` header, which any client (or anyone in front of an ALB or the
local server) can set: see `public_host`. The WSGI middleware (cities.http.base_path) decides it
once per request and records it under `PUBLIC_HOST`, which `absolute_urls` reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

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
