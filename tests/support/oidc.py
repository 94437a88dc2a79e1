"""A real OIDC issuer for tests: signing keys made by cryptography, and a discovery document and
JWKS served over HTTP on 127.0.0.1 by http.server in a thread."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.support.serving import serve_in_thread

AUDIENCE = "https://cities.test/api"


class SigningKey:
    """A private key, its kid and algorithm, and its public JWK."""

    def __init__(self, kid: str, algorithm: str = "RS256") -> None:
        self.kid, self.algorithm = kid, algorithm
        if algorithm == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            public = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        elif algorithm == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            public = jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = ed25519.Ed25519PrivateKey.generate()
            public = jwt.algorithms.OKPAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk = {**public, "kid": kid, "use": "sig", "alg": algorithm}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class Issuer:
    """An OIDC provider's public face: `/.well-known/openid-configuration` and `/jwks`, with
    switches to rotate keys, fail (`down`) and count JWKS fetches."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.down = False
        self.jwks_uri: str | None = None  # what discovery names (default: this server's /jwks)
        self.jwks_fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if issuer.down:
                    self.send_error(502)
                    return
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url,
                            "jwks_uri": issuer.jwks_uri or f"{issuer.url}/jwks"}
                elif self.path == "/jwks":
                    issuer.jwks_fetches += 1
                    body = {"keys": [key.jwk for key in issuer.keys]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def settings(self, **extra: Any) -> dict[str, Any]:
        """The app settings that trust this issuer."""
        return {"JWT_ISSUER": self.url, "JWT_AUDIENCE": AUDIENCE, **extra}

    def token(self, key: SigningKey | None = None, *, headers: dict | None = None,
              **claims: Any) -> str:
        """A token signed by `key` (the first key), valid now for five minutes unless `claims`
        say otherwise (None removes a claim)."""
        key = key or self.keys[0]
        now = int(time.time())
        payload = {"iss": self.url, "aud": AUDIENCE, "sub": "user-42", "iat": now,
                   "exp": now + 300, "scope": "openid cities:write", **claims}
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode(payload, key.private, algorithm=key.algorithm,
                          headers={"kid": key.kid, **(headers or {})})


def unsigned_token(header: dict[str, Any], payload: dict[str, Any], secret: bytes = b"") -> str:
    """A compact JWS built by hand: `alg: none` (no signature) or HS256 over `secret`, which
    PyJWT refuses to make with a public key, as a verifier must refuse to take it."""
    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{part(header)}.{part(payload)}"
    signature = b""
    if header["alg"] == "HS256":
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@contextmanager
def running_issuer(*keys: SigningKey) -> Iterator[Issuer]:
    issuer = Issuer()
    issuer.keys = list(keys)
    serve_in_thread(issuer.server)
    try:
        yield issuer
    finally:
        issuer.server.shutdown()
        issuer.server.server_close()
