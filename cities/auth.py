"""Optional bearer keys for writes: reads stay public, writes need a key when `API_KEYS` is set."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from .errors import Unauthorized

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def key_matches(presented: str, keys: Iterable[str]) -> bool:
    """Constant-time comparison against every key, so timing reveals neither key nor position."""
    presented_bytes = presented.encode("utf-8", "surrogateescape")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented_bytes, key.encode("utf-8", "surrogateescape"))
    return matched


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
