"""Optional bearer keys for writes: reads stay public, writes need a key when `API_KEYS` is set."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from cities.http.errors import ServiceUnavailable, Unauthorized

log = logging.getLogger("cities")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def key_matches(presented: str, keys: Iterable[str]) -> bool:
    """Constant-time comparison against every key, so timing reveals neither key nor position."""
    # surrogatepass: a header may carry a lone surrogate ("\ud800"), which is simply no key.
    presented_bytes = presented.encode("utf-8", "surrogatepass")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented_bytes, key.encode("utf-8", "surrogatepass"))
    return matched


def check_write(authorization: str | None, settings: Mapping[str, Any]) -> None:
    """A write goes ahead with a valid key, or with no key source configured at all.

    A source that is configured but holds no key (`API_KEYS=","`) is a mistake, not a request
    for open writes: every write answers 503 and the log names the setting.
    """
    unusable = settings.get("API_KEYS_UNUSABLE")
    if unusable:
        log.error("%s is set but holds no API key (only separators): writes are refused until "
                  "it names at least one key", unusable)
        raise ServiceUnavailable(
            "Writes are disabled: the server's API key setting holds no key."
        )
    require_key(authorization, settings["API_KEYS"])


def require_key(authorization: str | None, keys: tuple[str, ...]) -> None:
    """Raise 401 unless a write's `Authorization: Bearer <key>` names a key, when keys are set.

    Called for writes only (`WRITE_METHODS`): reads are public.
    """
    if not keys:
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Writes need an API key: send `Authorization: Bearer <key>`.")
    if not key_matches(token.strip(), keys):
        raise Unauthorized("The API key is not valid.")
