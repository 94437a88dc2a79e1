"""Writes by bearer JWT from an OIDC issuer, beside API keys: real signed tokens, verified
against a JWKS served by a real local HTTP server (tests/support/oidc.py)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("jwt", reason="PyJWT (requirements.txt) is not installed")

from cities.http import jwt_auth
from tests.support.oidc import AUDIENCE, SigningKey, running_issuer, unsigned_token

ROOT = Path(__file__).resolve().parents[2]
NICE = {"name": "Nice", "state": "PACA"}


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey("rsa-1")


@pytest.fixture(scope="module")
def next_key() -> SigningKey:
    return SigningKey("rsa-2")


@pytest.fixture
def issuer(rsa_key):
    with running_issuer(rsa_key) as issuer:
        yield issuer


@pytest.fixture
def clock(issuer):
    """The issuer's key cache on a clock the test moves (bounded refresh, key lifetime)."""
    class Clock:
        now = 1000.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    jwt_auth.key_set(issuer.url, None).clock = clock
    return clock


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def challenge(reply) -> str:
    return reply.header("WWW-Authenticate")


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_a_valid_token_writes_and_the_log_names_its_subject(client_for, caplog, algorithm):
    key = SigningKey(f"{algorithm}-key", algorithm)
    with running_issuer(key) as issuer:
        client = client_for(**issuer.settings())
        caplog.set_level(logging.INFO, logger="cities")
        reply = client.post("/cities", NICE, headers=bearer(issuer.token(sub="auth0|alice")))
    assert reply.status == 201, reply.json
    line = json.loads(next(r.getMessage() for r in caplog.records
                           if r.getMessage().startswith('{"event":"request"')))
    assert (line["writer"], line["auth"]) == ("auth0|alice", "token")


def test_the_issuer_is_found_by_discovery_or_given_its_jwks_url(client_for, issuer):
    direct = client_for(**issuer.settings(JWT_JWKS_URL=f"{issuer.url}/jwks"))
    assert direct.post("/cities", NICE, headers=bearer(issuer.token())).status == 201


def refused(client, sql, token: str, description: str) -> None:
    reply = client.post("/cities", NICE, headers=bearer(token))
    assert reply.status == 401 and reply.error_code == "unauthorized", reply.json
    assert challenge(reply) == (
        f'Bearer realm="cities", error="invalid_token", error_description="{description}"')
    assert sql("SELECT count(*) FROM city") == [(0,)]


@pytest.mark.parametrize(("claims", "description"), [
    ({"exp": int(time.time()) - 3600}, "The token has expired."),
    ({"nbf": int(time.time()) + 3600}, "The token is not valid yet (nbf)."),
    ({"iss": "https://other.example"}, "The token was issued by another issuer."),
    ({"aud": "https://other.example/api"}, "The token is meant for another audience."),
    ({"exp": None}, "The token lacks a required claim (exp, iss, aud, sub)."),
    ({"sub": None}, "The token lacks a required claim (exp, iss, aud, sub)."),
], ids=["expired", "not-yet", "wrong-issuer", "wrong-audience", "no-exp", "no-sub"])
def test_a_token_out_of_date_or_for_someone_else_is_401(client_for, sql, issuer, claims,
                                                      description):
    refused(client_for(**issuer.settings()), sql, issuer.token(**claims), description)


def test_a_clock_a_little_off_is_forgiven(client_for, issuer):
    now = int(time.time())
    token = issuer.token(exp=now - jwt_auth.LEEWAY_SECONDS // 2,
                         nbf=now + jwt_auth.LEEWAY_SECONDS // 2)
    assert client_for(**issuer.settings()).post("/cities", NICE, headers=bearer(token)).status \
        == 201


def test_alg_none_is_401(client_for, sql, issuer, rsa_key):
    token = unsigned_token({"alg": "none", "kid": rsa_key.kid},
                           json.loads(jwt_auth_payload(issuer)))
    refused(client_for(**issuer.settings()), sql, token,
            "The token's algorithm is not accepted (use RS256, ES256, EdDSA).")


def jwt_auth_payload(issuer) -> str:
    import jwt

    return json.dumps(jwt.decode(issuer.token(), options={"verify_signature": False}))


def test_hs256_signed_with_the_public_key_is_401(client_for, sql, issuer, rsa_key):
    """The algorithm confusion attack: the public key (which anyone has) as an HMAC secret."""
    payload = json.loads(jwt_auth_payload(issuer))
    for secret in (rsa_key.public_pem(), json.dumps(rsa_key.jwk).encode()):
        token = unsigned_token({"alg": "HS256", "kid": rsa_key.kid}, payload, secret)
        refused(client_for(**issuer.settings()), sql, token,
                "The token's algorithm is not accepted (use RS256, ES256, EdDSA).")


def test_a_token_signed_by_another_key_with_the_issuers_kid_is_401(client_for, sql, issuer,
                                                                   rsa_key):
    forger = SigningKey(rsa_key.kid)
    refused(client_for(**issuer.settings()), sql, issuer.token(forger),
            "The token's signature is not valid.")


def test_an_unknown_kid_refetches_the_keys_at_most_once_per_interval(client_for, sql, issuer,
                                                                     clock):
    client = client_for(**issuer.settings())
    stranger = SigningKey("not-published")
    assert client.post("/cities", NICE, headers=bearer(issuer.token())).status == 201
    assert issuer.jwks_fetches == 1
    sql("DELETE FROM city")
    for _ in range(5):
        refused(client, sql, issuer.token(stranger),
                "The token's signing key (kid) is not one of the issuer's keys.")
    assert issuer.jwks_fetches == 1  # within MIN_REFRESH_SECONDS: no refetch
    clock.now += jwt_auth.MIN_REFRESH_SECONDS
    refused(client, sql, issuer.token(stranger),
            "The token's signing key (kid) is not one of the issuer's keys.")
    assert issuer.jwks_fetches == 2


def test_rotated_keys_are_picked_up_and_removed_keys_stop_working(client_for, sql, issuer, clock,
                                                                 rsa_key, next_key):
    client = client_for(**issuer.settings())

    def write(key: SigningKey) -> int:
        sql("DELETE FROM city")
        return client.post("/cities", NICE, headers=bearer(issuer.token(key))).status

    assert write(rsa_key) == 201
    issuer.keys = [next_key, rsa_key]  # the provider publishes its next key, then signs with it
    clock.now += jwt_auth.MIN_REFRESH_SECONDS
    assert write(next_key) == 201
    issuer.keys = [next_key]  # the old key is retired
    assert write(rsa_key) == 201  # still cached
    clock.now += jwt_auth.MAX_AGE_SECONDS  # cached keys live this long, then are read again
    assert write(next_key) == 201
    sql("DELETE FROM city")
    refused(client, sql, issuer.token(rsa_key),
            "The token's signing key (kid) is not one of the issuer's keys.")
    assert issuer.jwks_fetches == 3


def test_jwks_down_is_503_and_nothing_is_written(client_for, sql, issuer, caplog):
    issuer.down = True
    client = client_for(**issuer.settings())
    with caplog.at_level(logging.ERROR, logger="cities"):
        reply = client.post("/cities", NICE, headers=bearer(issuer.token()))
    assert reply.status == 503 and reply.error_code == "service_unavailable"
    assert reply.header("Retry-After")
    assert "keys cannot be read" in caplog.text
    assert sql("SELECT count(*) FROM city") == [(0,)]


def test_an_issuer_nobody_answers_at_is_503(client_for, sql, rsa_key):
    with running_issuer(rsa_key) as issuer:
        token = issuer.token()
    reply = client_for(**issuer.settings()).post("/cities", NICE, headers=bearer(token))
    assert reply.status == 503
    assert sql("SELECT count(*) FROM city") == [(0,)]


def test_a_discovery_document_of_another_issuer_is_503(client_for, sql, issuer):
    client = client_for(**issuer.settings(JWT_ISSUER=f"{issuer.url}/"))  # iss says otherwise
    reply = client.post("/cities", NICE, headers=bearer(issuer.token(iss=f"{issuer.url}/")))
    assert reply.status == 503
    assert sql("SELECT count(*) FROM city") == [(0,)]


@pytest.mark.parametrize("jwks_uri", ["file:///etc/passwd", "http://issuer.example/jwks"])
def test_a_jwks_uri_that_is_not_https_is_never_read(client_for, sql, issuer, jwks_uri):
    issuer.jwks_uri = jwks_uri
    reply = client_for(**issuer.settings()).post("/cities", NICE, headers=bearer(issuer.token()))
    assert reply.status == 503
    assert sql("SELECT count(*) FROM city") == [(0,)]


@pytest.mark.parametrize("claims", [{"scope": "openid profile"}, {"scope": None},
                                    {"scope": None, "scp": ["cities:read"]}])
def test_a_token_without_the_write_scope_is_403(client_for, sql, issuer, claims):
    reply = client_for(**issuer.settings()).post("/cities", NICE,
                                                 headers=bearer(issuer.token(**claims)))
    assert reply.status == 403 and reply.error_code == "forbidden"
    assert challenge(reply) == (
        'Bearer realm="cities", error="insufficient_scope", error_description="The token lacks '
        'the scope cities:write, which writes need.", scope="cities:write"')
    assert sql("SELECT count(*) FROM city") == [(0,)]


def test_scp_as_a_list_and_a_configured_scope(client_for, issuer):
    client = client_for(**issuer.settings(JWT_WRITE_SCOPE="api.write"))
    token = issuer.token(scope=None, scp=["api.read", "api.write"])
    assert client.post("/cities", NICE, headers=bearer(token)).status == 201


def test_keys_and_tokens_write_side_by_side(client_for, issuer):
    client = client_for(**issuer.settings(), API_KEYS=("ci:ci-key-1",))
    assert client.post("/cities", NICE, headers=bearer("ci-key-1")).status == 201
    assert client.post("/cities", {"name": "Lyon", "state": "ARA"},
                       headers=bearer(issuer.token())).status == 201
    reply = client.post("/cities", NICE, headers=bearer("a.b.c"))
    assert reply.status == 401 and 'error="invalid_token"' in challenge(reply)


def test_without_a_credential_the_challenge_carries_no_error(client_for, issuer):
    reply = client_for(**issuer.settings()).post("/cities", NICE)
    assert reply.status == 401 and challenge(reply) == 'Bearer realm="cities"'


def test_an_issuer_without_an_audience_refuses_writes(monkeypatch, client_for, sql, issuer,
                                                      caplog):
    from cities.ops import config

    with caplog.at_level(logging.ERROR, logger="cities"):
        settings = config.from_env({"JWT_ISSUER": issuer.url})
    assert "JWT_AUDIENCE is not" in caplog.text
    client = client_for(UNUSABLE_SETTINGS=settings["UNUSABLE_SETTINGS"], **issuer.settings())
    assert client.post("/cities", NICE, headers=bearer(issuer.token())).status == 503
    assert client.get("/cities").status == 200
    assert sql("SELECT count(*) FROM city") == [(0,)]


@pytest.mark.parametrize(("name", "value"), [
    ("JWT_ISSUER", "http://issuer.example"), ("JWT_ISSUER", "issuer.example"),
    ("JWT_JWKS_URL", "ftp://x/jwks"), ("JWT_AUDIENCE", "two words"),
    ("JWT_WRITE_SCOPE", "a b")])
def test_token_settings_out_of_range_refuse_writes(name, value):
    from cities.ops import config

    settings = config.from_env({"JWT_ISSUER": "https://issuer.example", "JWT_AUDIENCE": AUDIENCE,
                                name: value})
    assert name in settings["UNUSABLE_SETTINGS"]


def test_the_verifier_is_not_imported_until_a_token_comes():
    """Cold start: importing the handler (and a key write) loads neither PyJWT nor cryptography."""
    code = ("import sys, handler\n"
            "loaded = [m for m in ('jwt', 'cryptography', 'cities.http.jwt_auth') "
            "if m in sys.modules]\n"
            "print(loaded)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "JWT_ISSUER": "https://issuer.example",
                              "JWT_AUDIENCE": AUDIENCE}, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_the_document_describes_both_schemes_on_every_write(client):
    document = client.get("/openapi.json").json
    schemes = document["components"]["securitySchemes"]
    assert schemes["oidcToken"] == {**schemes["oidcToken"], "type": "http", "scheme": "bearer",
                                    "bearerFormat": "JWT"}
    assert schemes["bearer"]["scheme"] == "bearer"
    for path in document["paths"].values():
        for method, operation in path.items():
            if method.upper() in ("POST", "PUT", "PATCH", "DELETE"):
                assert {"oidcToken": []} in operation["security"], operation["operationId"]
                assert {"bearer": []} in operation["security"]
                assert "403" in operation["responses"]
