"""Bearer JWTs from an OIDC issuer: signature by the issuer's JWKS, `exp`/`nbf`/`iss`/`aud`,
and the write scope.

Imported only when a write presents a token (cities.http.auth), so PyJWT and cryptography never
cost a cold start where no issuer is configured. The JWKS is fetched on the first token and kept
per container; a token naming an unknown `kid` (a rotation) refetches it, at most once every
`MIN_REFRESH_SECONDS`, so a stream of made-up kids cannot turn every write into a fetch. When
the keys cannot be read the write answers 503: never "unverified, so let it through".
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from cities.http.errors import Forbidden, ServiceUnavailable, Unauthorized

log = logging.getLogger("cities")

# Asymmetric only: with HS256 a public key would become a shared secret (the classic confusion).
ALGORITHMS = ("RS256", "ES256", "EdDSA")
LEEWAY_SECONDS = 30  # clocks of issuer and Lambda disagree a little; a token's life is minutes
MIN_REFRESH_SECONDS = 5.0  # an unknown kid refetches the JWKS at most this often
MAX_AGE_SECONDS = 600.0  # keys are refetched after this, so a removed key stops working
FETCH_TIMEOUT_SECONDS = 3.0  # well inside the function's 25 s, with the write still to do
MAX_DOCUMENT_BYTES = 512 * 1024
MAX_SUBJECT_CHARS = 200


class KeysUnavailable(Exception):
    """The JWKS (or the discovery document naming it) could not be read or made no sense."""


def _fetch_json(url: str) -> dict[str, Any]:
    """GET `url` as JSON; KeysUnavailable on any failure (the reason goes to the log only).

    Only https, or http to this machine, as the settings allow: a discovery document's
    `jwks_uri` must not lead to `file:` or elsewhere in plain text."""
    from cities.ops.config import OIDC_URL

    if not re.fullmatch(OIDC_URL, url, re.ASCII):
        raise KeysUnavailable("the JWKS URL is not https")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310 - URL from validated settings
            body = response.read(MAX_DOCUMENT_BYTES + 1)
        if len(body) > MAX_DOCUMENT_BYTES:
            raise ValueError("document too large")
        document = json.loads(body)
    except (OSError, ValueError) as exc:
        raise KeysUnavailable(f"{url}: {type(exc).__name__}") from None
    if not isinstance(document, dict):
        raise KeysUnavailable(f"{url}: not a JSON object")
    return document


class KeySet:
    """The issuer's signing keys by kid, fetched on first use and refreshed within bounds."""

    def __init__(self, issuer: str, jwks_url: str | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.issuer, self.jwks_url, self.clock = issuer, jwks_url, clock
        self.keys: dict[str | None, Any] = {}
        self.fetched_at: float | None = None
        self.lock = threading.Lock()

    def key(self, kid: str | None) -> Any:
        """The PyJWK for `kid`; KeysUnavailable when the JWKS cannot be read, None if unknown."""
        with self.lock:
            now = self.clock()
            stale = self.fetched_at is None or now - self.fetched_at >= MAX_AGE_SECONDS
            may_refresh = self.fetched_at is None or now - self.fetched_at >= MIN_REFRESH_SECONDS
            if stale or (kid not in self.keys and may_refresh):
                self._refresh(now)
            return self.keys.get(kid)

    def _refresh(self, now: float) -> None:
        import jwt

        document = _fetch_json(self.jwks_url or self._discovered_jwks_url())
        try:
            keys = jwt.PyJWKSet.from_dict(document).keys
        except jwt.PyJWTError as exc:
            raise KeysUnavailable(f"JWKS: {type(exc).__name__}") from None
        self.keys = {key.key_id: key for key in keys}
        if len(keys) == 1:
            self.keys.setdefault(None, keys[0])  # a token without kid, when there is one key
        self.fetched_at = now

    def _discovered_jwks_url(self) -> str:
        """`jwks_uri` of the issuer's OIDC discovery document, which must name this issuer."""
        url = f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"
        document = _fetch_json(url)
        if document.get("issuer") != self.issuer or not isinstance(document.get("jwks_uri"), str):
            raise KeysUnavailable(f"{url}: not this issuer's discovery document")
        self.jwks_url = document["jwks_uri"]
        return self.jwks_url


_key_sets: dict[tuple[str, str | None], KeySet] = {}
_key_sets_lock = threading.Lock()


def key_set(issuer: str, jwks_url: str | None) -> KeySet:
    """One KeySet per issuer and JWKS URL for the container's life."""
    with _key_sets_lock:
        return _key_sets.setdefault((issuer, jwks_url), KeySet(issuer, jwks_url))


def _invalid(description: str) -> Unauthorized:
    return Unauthorized(description, error="invalid_token")


def verified_claims(token: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The claims of a token signed by one of the issuer's keys, for this audience, in date;
    401 (invalid_token) otherwise, 503 when the issuer's keys cannot be read."""
    import jwt

    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _invalid("The token is malformed.") from None
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise _invalid(f"The token's algorithm is not accepted (use {', '.join(ALGORITHMS)}).")
    try:
        key = key_set(settings["JWT_ISSUER"], settings.get("JWT_JWKS_URL")).key(header.get("kid"))
    except KeysUnavailable as exc:
        log.error("the token issuer's keys cannot be read (%s): writes by token answer 503", exc)
        raise ServiceUnavailable("The token issuer's keys cannot be read; retry shortly.") from None
    if key is None:
        raise _invalid("The token's signing key (kid) is not one of the issuer's keys.")
    if key.algorithm_name != algorithm:
        raise _invalid("The token's algorithm does not match its key.")
    return _decoded(token, key.key, algorithm, settings)


def _decoded(token: str, key: Any, algorithm: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    import jwt

    reasons = (
        (jwt.ExpiredSignatureError, "The token has expired."),
        (jwt.ImmatureSignatureError, "The token is not valid yet (nbf)."),
        (jwt.InvalidIssuerError, "The token was issued by another issuer."),
        (jwt.InvalidAudienceError, "The token is meant for another audience."),
        (jwt.MissingRequiredClaimError, "The token lacks a required claim (exp, iss, aud, sub)."),
        (jwt.InvalidSignatureError, "The token's signature is not valid."),
    )
    try:
        return jwt.decode(
            token, key, algorithms=[algorithm], audience=settings["JWT_AUDIENCE"],
            issuer=settings["JWT_ISSUER"], leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as exc:
        reason = next((text for kind, text in reasons if isinstance(exc, kind)),
                      "The token is not valid.")
        raise _invalid(reason) from None


def scopes(claims: Mapping[str, Any]) -> set[str]:
    """A token's scopes: `scope` as a space-separated string (RFC 9068), or `scp` as a list or
    string (Okta, Entra ID)."""
    found: set[str] = set()
    for claim in (claims.get("scope"), claims.get("scp")):
        if isinstance(claim, str):
            found.update(claim.split())
        elif isinstance(claim, list):
            found.update(item for item in claim if isinstance(item, str))
    return found


def verified_subject(token: str, settings: Mapping[str, Any]) -> str:
    """The subject of a valid token that may write; 403 (insufficient_scope) without the write
    scope."""
    claims = verified_claims(token, settings)
    scope = settings.get("JWT_WRITE_SCOPE") or "cities:write"
    if scope not in scopes(claims):
        raise Forbidden(f"The token lacks the scope {scope}, which writes need.", scope)
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise _invalid("The token's subject (sub) is not a string.")
    return subject[:MAX_SUBJECT_CHARS]
