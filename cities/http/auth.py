"""Who may write: reads stay public; writes need a bearer API key when `API_KEYS` is set, or a
JWT from the configured OIDC issuer when `JWT_ISSUER` is set (cities.http.jwt_auth).

Each write that passes names its writer (a key's name, a token's subject), for the log line and
quotas; a key itself is never shown.
"""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from cities.http.errors import ServiceUnavailable, Unauthorized
from cities.ops.config import named_api_keys

log = logging.getLogger("cities")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JWT_SETTINGS = ("JWT_ISSUER", "JWT_AUDIENCE", "JWT_JWKS_URL", "JWT_WRITE_SCOPE")


class Writer(NamedTuple):
    """Who wrote: `name` is a key's name or a token's subject; `via` is `api_key` or `token`."""

    name: str
    via: str


def key_matches(presented: str, keys: Iterable[str]) -> bool:
    """Constant-time comparison against every key, so timing reveals neither key nor position."""
    return _matching_name(presented, [("", key) for key in keys]) is not None


def _matching_name(presented: str, named: Iterable[tuple[str, str]]) -> str | None:
    """The name of the key `presented` is, comparing with every key (no early exit)."""
    # surrogatepass: a header may carry a lone surrogate ("\ud800"), which is simply no key.
    presented_bytes = presented.encode("utf-8", "surrogatepass")
    found = None
    for name, key in named:
        if hmac.compare_digest(presented_bytes, key.encode("utf-8", "surrogatepass")):
            found = name
    return found


@functools.lru_cache(maxsize=4)
def _named(entries: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return named_api_keys(entries)  # once per key setting, not per write


def check_write(authorization: str | None, settings: Mapping[str, Any]) -> Writer | None:
    """The writer of a write that may go ahead (None: no key source nor issuer configured, so
    writes are open), else 401.

    A source that is configured but holds no key (`API_KEYS=","`) is a mistake, not a request
    for open writes: every write answers 503 and the log names the setting. So does an issuer
    setting out of range.
    """
    unusable = settings.get("API_KEYS_UNUSABLE")
    if unusable:
        log.error("%s is set but holds no API key (only separators): writes are refused until "
                  "it names at least one key", unusable)
        raise ServiceUnavailable(
            "Writes are disabled: the server's API key setting holds no key."
        )
    if any(name in settings.get("UNUSABLE_SETTINGS", ()) for name in JWT_SETTINGS):
        raise ServiceUnavailable("Writes are disabled: the server's token settings are invalid.")
    return require_writer(authorization, settings)


def require_writer(authorization: str | None, settings: Mapping[str, Any]) -> Writer | None:
    """A key's writer, else a token's, from `Authorization: Bearer <credential>`; None when
    neither keys nor an issuer are set. Called for writes only (`WRITE_METHODS`)."""
    keys, issuer = settings["API_KEYS"], settings.get("JWT_ISSUER")
    if not keys and not issuer:
        return None
    scheme, _, credential = (authorization or "").partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        wanted = "an API key or a token" if keys and issuer else (
            "a token" if issuer else "an API key")
        raise Unauthorized(f"Writes need {wanted}: send `Authorization: Bearer <credential>`.")
    name = _matching_name(credential, _named(keys)) if keys else None
    if name is not None:
        return Writer(name, "api_key")
    if issuer and credential.count(".") == 2:  # a JWS compact token: header.payload.signature
        from cities.http import jwt_auth  # PyJWT and cryptography load on the first token

        return Writer(jwt_auth.verified_subject(credential, settings), "token")
    raise Unauthorized("The API key is not valid." if keys else "The token is not valid.",
                       error="invalid_token")

