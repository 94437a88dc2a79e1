"""Optional write protection: with `API_KEYS` set, writes need a bearer key; reads stay public."""

from __future__ import annotations

import json
import logging

import pytest

from cities.http.auth import key_matches

KEYS = ("old-key-2025", "new-key-2026")


@pytest.fixture
def locked(app, monkeypatch):
    monkeypatch.setitem(app.config, "API_KEYS", KEYS)


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


WRITES = [
    ("POST", "/cities", {"name": "Nice", "state": "PACA"}),
    ("PUT", "/cities/1", {"name": "Nice", "state": "PACA"}),
    ("PATCH", "/cities/1", {"state": "Alpes"}),
    ("DELETE", "/cities/1", None),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
@pytest.mark.parametrize(
    "headers",
    [None, bearer("wrong"), {"authorization": "new-key-2026"}, {"authorization": "Basic eDp5"},
     bearer(""), bearer("new-key-2026x"), bearer("NEW-KEY-2026")],
    ids=["none", "wrong", "no-scheme", "basic", "empty", "longer", "case"],
)
def test_writes_without_a_valid_key_are_401(client, sql, locked, method, path, body, headers):
    sql("INSERT INTO city (name, state) VALUES ('Lyon', 'ARA')")
    reply = client.request(method, path, body, headers=headers)
    assert reply.status == 401
    assert reply.error_code == "unauthorized"
    assert reply.header("WWW-Authenticate").startswith("Bearer")
    assert sql("SELECT id, name, state FROM city") == [(1, "Lyon", "ARA")]


@pytest.mark.parametrize("key", KEYS)
def test_every_configured_key_may_write(client, locked, key):
    created = client.post("/cities", {"name": "Nice", "state": "PACA"}, headers=bearer(key))
    assert created.status == 201
    path = f"/cities/{created.json['id']}"
    assert client.patch(path, {"state": "Alpes"}, headers=bearer(key)).status == 200
    assert client.put(path, {"name": "Nice", "state": "PACA"}, headers=bearer(key)).status == 200
    assert client.delete(path, headers=bearer(key)).status == 200


def test_the_scheme_is_case_insensitive(client, locked):
    reply = client.post("/cities", {"name": "Nice", "state": "PACA"},
                        headers={"authorization": "bearer new-key-2026"})
    assert reply.status == 201


def test_reads_stay_public(client, sql, locked):
    sql("INSERT INTO city (name, state) VALUES ('Lyon', 'ARA')")
    assert client.get("/cities").status == 200
    assert client.get("/cities/1").status == 200
    assert client.get("/openapi.json").status == 200


def test_auth_is_checked_before_the_body(client, locked):
    reply = client.post("/cities", "{not json")
    assert reply.status == 401


def test_without_keys_writes_are_open(client):
    assert client.post("/cities", {"name": "Nice", "state": "PACA"}).status == 201


def test_key_matching():
    assert key_matches("b", ("a", "b"))
    assert not key_matches("c", ("a", "b"))
    assert not key_matches("", ("a",))
    assert not key_matches("a", ())
    assert not key_matches("é", ("e",))


@pytest.mark.parametrize("raw", [",", " , ", "\n", " ", ",,\n,"])
def test_a_key_setting_with_no_key_refuses_writes(client_for, sql, caplog, raw):
    """Configured but empty is a mistake: writes fail closed (503), the log names the setting."""
    from cities.ops import config

    client = client_for(**config.api_key_settings(raw, "API_KEYS"))
    with caplog.at_level(logging.ERROR, logger="cities"):
        reply = client.post("/cities", {"name": "Nice", "state": "PACA"})
    assert reply.status == 503 and reply.error_code == "service_unavailable"
    assert any("API_KEYS" in r.getMessage() for r in caplog.records), caplog.text
    assert sql("SELECT count(*) FROM city") == [(0,)]
    assert client.get("/cities").status == 200  # reads stay public


def test_the_start_log_counts_keys_and_never_shows_them(monkeypatch, caplog):
    from cities import create_app

    monkeypatch.setenv("API_KEYS", "first-secret-key, second-secret-key")
    with caplog.at_level(logging.INFO, logger="cities"):
        create_app()
    assert "API keys: 2 active" in caplog.text
    assert "secret-key" not in caplog.text
    monkeypatch.setenv("API_KEYS", " , ")
    with caplog.at_level(logging.INFO, logger="cities"):
        create_app()
    assert "API_KEYS holds no key, writes are refused" in caplog.text


@pytest.mark.parametrize("value", ["Bearer \ud800", "Bearer \udcff", "\ud800", "Bearer a\udfff"])
def test_a_lone_surrogate_in_authorization_is_401(client, locked, sql, value):
    reply = client.post("/cities", {"name": "Nice", "state": "PACA"},
                        headers={"authorization": value})
    assert reply.status == 401 and reply.error_code == "unauthorized"
    assert sql("SELECT count(*) FROM city") == [(0,)]


@pytest.mark.parametrize("header", ["idempotency-key", "content-type", "content-encoding", "host",
                                    "x-forwarded-proto", "x-forwarded-port"])
def test_a_lone_surrogate_in_any_header_the_api_reads_is_never_a_500(client, sql, header):
    reply = client.post("/cities", {"name": "Nice", "state": "PACA"},
                        headers={header: "x\ud800"})
    assert reply.status < 500, reply


NAMED = ("alice:alice-secret-1", "bob:bob-secret-2", "bare-secret-3", "alice:alice-secret-4")


def write_lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records
            if r.getMessage().startswith('{"event":"request"') and '"POST"' in r.getMessage()]


@pytest.mark.parametrize(("key", "writer"), [
    ("alice-secret-1", "alice"), ("bob-secret-2", "bob"), ("bare-secret-3", "key-3"),
    ("alice-secret-4", "alice")])
def test_a_named_key_writes_and_the_log_names_its_writer_never_the_key(
        client_for, caplog, key, writer):
    """`name:key` entries beside bare ones; a writer may hold two keys (rotation)."""
    client = client_for(API_KEYS=NAMED)
    caplog.set_level(logging.INFO, logger="cities")
    assert client.post("/cities", {"name": "Nice", "state": "PACA"},
                       headers=bearer(key)).status == 201
    (line,) = write_lines(caplog)
    assert (line["writer"], line["auth"]) == (writer, "api_key")
    assert "secret" not in caplog.text


@pytest.mark.parametrize("sent", ["alice:alice-secret-1", "alice", "bob:bob-secret-2"])
def test_a_named_entry_as_written_is_no_key(client_for, sql, sent):
    """The key is what follows the name: the whole entry (or the name) is refused."""
    client = client_for(API_KEYS=NAMED)
    reply = client.post("/cities", {"name": "Nice", "state": "PACA"}, headers=bearer(sent))
    assert reply.status == 401
    assert 'error="invalid_token"' in reply.header("WWW-Authenticate")
    assert sql("SELECT count(*) FROM city") == [(0,)]


def test_refused_and_open_writes_log_no_writer(client_for, client, caplog):
    caplog.set_level(logging.INFO, logger="cities")
    client_for(API_KEYS=NAMED).post("/cities", {"name": "Nice", "state": "PACA"},
                                    headers=bearer("nobody"))
    client.post("/cities", {"name": "Nice", "state": "PACA"})
    assert [line.get("writer") for line in write_lines(caplog)] == [None, None]


@pytest.mark.parametrize(("raw", "expected"), [
    ("alice:k1, k2 ,bob:x:y", [("alice", "k1"), ("key-2", "k2"), ("bob", "x:y")]),
    # Not a name before the colon: the entry is a bare key, as API_KEYS always took it.
    (":k1,a b:k2,1st:k3,x:", [("key-1", ":k1"), ("key-2", "a b:k2"), ("key-3", "1st:k3"),
                              ("key-4", "x:")]),
])
def test_key_entries_name_their_writers(raw, expected):
    from cities.ops import config

    assert list(config.named_api_keys(config.parse_api_keys(raw))) == expected


def test_named_keys_are_masked_in_logs_whole_and_alone(monkeypatch, caplog):
    from cities import create_app
    from cities.ops.secrets_mask import mask_secrets

    monkeypatch.setenv("API_KEYS", "alice:s3cr3t-alice-key,plain-old-key")
    with caplog.at_level(logging.INFO, logger="cities"):
        create_app()
    assert "API keys: 2 active (writers: alice, key-2)" in caplog.text
    masked = mask_secrets("sent s3cr3t-alice-key, alice:s3cr3t-alice-key and plain-old-key")
    assert masked == "sent ***, *** and ***"
