"""Per-writer write quotas: N writes per window for each writer, 429 past it, and the RateLimit
fields on every write.

A writer is a key's name or a token's subject (cities.http.auth); while writes are open (no key
nor issuer set) all writes are one writer, `anonymous`: a quota the operator set is a cap they
asked for, and without identities the only unit left is the whole. Key names and token subjects
are counted apart (a token whose subject is a key's name does not spend that key's quota);
`WRITE_QUOTA_OVERRIDES` names either. Off unless WRITE_QUOTA or WRITE_QUOTA_OVERRIDES is set:
then no hook is installed and no SQL added. Counting itself is cities.db.quota's, in the write's
own transaction.

The fields are those of draft-ietf-httpapi-ratelimit-headers-11 (sections 3 and 4): each is a
Structured Fields List (RFC 9651) of Items whose value is a String naming a policy, with
Parameters: `RateLimit-Policy` gives the policy's quota `q` (a non-negative Integer, in the
default unit `requests`, here writes) and window `w` (a positive Integer of seconds), and
`RateLimit` the service limit: the available quota `r` (a non-negative Integer) and the
effective window `t` (seconds, a non-negative Integer), e.g.

    RateLimit-Policy: "writes";q=100;w=3600
    RateLimit: "writes";r=42;t=1800

No partition key (`pk`) is sent: it would echo the writer's identity, which the draft advises
against (6.1), and the credential already names the partition. A write answers both fields once
its writer is known (after authentication); `RateLimit` needs the database's count, so a write
refused before its commit (409, 412, 422 from the database) carries the policy only. A 429 has
both, `r=0` (or what is left if the window ended meanwhile), and `Retry-After` equal to `t` (the
draft: not earlier than the effective window's end, and taking precedence over it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, g, request

from cities.db import connection
from cities.http.auth import WRITE_METHODS, Writer
from cities.http.errors import ServiceUnavailable, TooManyRequests

POLICY = "writes"
ANONYMOUS = Writer("anonymous", "open")
SETTINGS = ("WRITE_QUOTA", "WRITE_QUOTA_OVERRIDES")
_EXTENSION = "cities.write_quota"
# Longer names are counted under their hash (migration 0007 bounds the column).
_LONGEST_NAME = 200


class QuotaPolicy:
    """The stage's default quota, its per-writer overrides and the window's length."""

    def __init__(self, default: int | None, window: int,
                 overrides: Mapping[str, int]) -> None:
        self.default, self.window, self.overrides = default, window, dict(overrides)

    def quota_for(self, writer: Writer) -> int | None:
        """The writer's writes per window; None: it has no quota."""
        return self.overrides.get(writer.name, self.default)


def policy_field(quota: int, window: int) -> str:
    return f'"{POLICY}";q={quota};w={window}'


def limit_field(remaining: int, reset: int) -> str:
    return f'"{POLICY}";r={remaining};t={reset}'


def counter_key(writer: Writer) -> str:
    """The writer's row in write_quota: how it wrote and its name (hashed when very long)."""
    name = writer.name
    if len(name) > _LONGEST_NAME:
        name = "sha256:" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{writer.via}:{name}"


def _policy() -> QuotaPolicy | None:
    return current_app.extensions.get(_EXTENSION)


def _writer() -> Writer | None:
    """This write's writer once authenticated (None before, or on a 401)."""
    if "writer" not in g:
        return None
    return g.writer or ANONYMOUS


def commit(result: Any) -> None:
    """Commit the request's write, counted against its writer's quota when it took effect; a
    result of None (no such item) or an idempotent replay (`(row, True)`) costs nothing.

    Without quotas this is the plain COMMIT. Past the quota, 429 and nothing written.
    """
    policy, writer = _policy(), _writer()
    quota = policy.quota_for(writer) if policy and writer else None
    if quota is None:
        connection.commit()
        return
    from cities.db import quota as counting

    replayed = isinstance(result, tuple) and len(result) == 2 and result[1] is True
    try:
        g.write_usage = counting.commit_counted(
            g.db, counter_key(writer), quota, policy.window,
            count=result is not None and not replayed,
            statement_timeout_ms=current_app.config["DB_STATEMENT_TIMEOUT_MS"])
    except counting.QuotaExceeded as exceeded:
        g.write_usage = exceeded.usage
        raise TooManyRequests(max(1, exceeded.usage.reset)) from None


def refuse_unusable_settings() -> None:
    """503 on writes while a quota setting is out of range: not taken to be off."""
    if request.method in WRITE_METHODS and any(
            name in current_app.config.get("UNUSABLE_SETTINGS", ()) for name in SETTINGS):
        raise ServiceUnavailable("Writes are disabled: the server's write quota settings are "
                                 "invalid.")


def add_fields(response: Response) -> Response:
    """RateLimit-Policy on a write whose writer has a quota, RateLimit once it was counted."""
    policy, writer = _policy(), _writer()
    if policy is None or writer is None or request.method not in WRITE_METHODS:
        return response
    quota = policy.quota_for(writer)
    if quota is None:
        return response
    response.headers["RateLimit-Policy"] = policy_field(quota, policy.window)
    usage = g.get("write_usage")
    if usage is not None:
        response.headers["RateLimit"] = limit_field(usage.remaining, usage.reset)
    return response


def init_app(app: Flask) -> None:
    """Install the quota hooks when a quota setting is set (or refused); otherwise none."""
    config = app.config
    unusable = [name for name in SETTINGS if name in config.get("UNUSABLE_SETTINGS", ())]
    if unusable:
        app.before_request(refuse_unusable_settings)
        return
    default, overrides = config.get("WRITE_QUOTA"), config.get("WRITE_QUOTA_OVERRIDES") or ()
    if default is None and not overrides:
        return
    app.extensions[_EXTENSION] = QuotaPolicy(default, config["WRITE_QUOTA_WINDOW"],
                                             dict(overrides))
    app.after_request(add_fields)


# The two fields as the OpenAPI document describes them (cities/http/openapi.py: every write's
# success and its 429).
RATE_LIMIT_FIELDS = {
    "RateLimit-Policy": {
        "description": "The writer's quota policy (draft-ietf-httpapi-ratelimit-headers-11): "
        '`"writes";q=<writes>;w=<seconds>`. Sent when the server sets WRITE_QUOTA or the writer '
        "has an override (WRITE_QUOTA_OVERRIDES).",
        "schema": {"type": "string", "examples": [policy_field(100, 3600)]},
    },
    "RateLimit": {
        "description": 'What is left of it: `"writes";r=<writes left>;t=<seconds until the '
        "window ends>`. The window starts at the writer's first write after the last one "
        "ended; a write that wrote nothing, or replays an idempotent create, costs nothing.",
        "schema": {"type": "string", "examples": [limit_field(42, 1800)]},
    },
}
