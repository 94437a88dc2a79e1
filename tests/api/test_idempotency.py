"""`Idempotency-Key` on `POST /cities`: a retried create returns the first response, once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import open_connections

LYON = {"name": "Lyon", "state": "ARA"}


def keyed(key: str) -> dict[str, str]:
    return {"idempotency-key": key}


def test_a_retry_returns_the_original_response_and_creates_nothing(client, sql):
    first = client.post("/cities", LYON, headers=keyed("k-1"))
    retry = client.post("/cities", LYON, headers=keyed("k-1"))

    assert (first.status, retry.status) == (201, 201)
    assert retry.json == first.json
    assert retry.header("Location") == first.header("Location")
    assert retry.header("Idempotent-Replayed") == "true"
    assert first.header("Idempotent-Replayed") is None
    assert sql("SELECT count(*) FROM city") == [(1,)]


def test_a_retry_differing_only_in_whitespace_and_order_is_the_same_request(client, sql):
    first = client.post("/cities", '{"name": "Lyon", "state": "ARA"}', headers=keyed("k-2"))
    retry = client.post("/cities", '{ "state": " ARA ",\n "name": "Lyon" }', headers=keyed("k-2"))
    assert retry.json == first.json
    assert sql("SELECT count(*) FROM city") == [(1,)]


def test_the_same_key_with_another_body_is_422(client, sql):
    client.post("/cities", LYON, headers=keyed("k-3"))
    reply = client.post("/cities", {"name": "Nice", "state": "PACA"}, headers=keyed("k-3"))
    assert reply.status == 422
    assert reply.detail_fields == ["Idempotency-Key"]
    assert sql("SELECT name FROM city") == [("Lyon",)]


def test_without_a_key_a_repeat_is_a_conflict(client):
    assert client.post("/cities", LYON).status == 201
    assert client.post("/cities", LYON).status == 409


def test_concurrent_retries_create_one_row_and_all_get_it(client, sql, database_url):
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda _: client.post("/cities", LYON, headers=keyed("k-4")),
                                range(12)))
    assert [r.status for r in replies] == [201] * 12
    assert len({r.json["id"] for r in replies}) == 1
    assert sum(r.header("Idempotent-Replayed") == "true" for r in replies) == 11
    assert sql("SELECT count(*) FROM city") == [(1,)]
    assert open_connections(database_url) == 0


def test_a_failed_create_does_not_consume_the_key(client, sql):
    existing = client.post("/cities", LYON).json
    assert client.post("/cities", LYON, headers=keyed("k-5")).status == 409
    client.delete(f"/cities/{existing['id']}")
    retry = client.post("/cities", LYON, headers=keyed("k-5"))
    assert retry.status == 201
    assert retry.header("Idempotent-Replayed") is None


def test_an_expired_key_can_be_used_again(client, sql):
    client.post("/cities", LYON, headers=keyed("k-6"))
    sql("UPDATE idempotency_key SET expires_at = now() - interval '1 second'")
    reply = client.post("/cities", {"name": "Nice", "state": "PACA"}, headers=keyed("k-6"))
    assert reply.status == 201
    assert reply.json["name"] == "Nice"


def test_expired_keys_are_swept(client, sql):
    client.post("/cities", LYON, headers=keyed("old"))
    sql("UPDATE idempotency_key SET expires_at = now() - interval '1 day'")
    client.post("/cities", {"name": "Nice", "state": "PACA"}, headers=keyed("new"))
    assert sql("SELECT key FROM idempotency_key") == [("new",)]


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "clé", "a b", "tab\tkey"])
def test_malformed_keys_are_422(client, sql, key):
    reply = client.post("/cities", LYON, headers=keyed(key))
    assert reply.status == 422
    assert reply.detail_fields == ["Idempotency-Key"]
    assert sql("SELECT count(*) FROM city") == [(0,)]


def test_keys_stored_before_they_were_scoped_per_collection_still_replay(
    client_for, empty_database_url, tmp_path
):
    """Migration 0006 scopes keys per collection; a key a client sent before it still replays."""
    import json
    import shutil

    from cities.db.migrate import MIGRATIONS_DIR, migrate
    from cities.http.idempotency import request_hash
    from tests.conftest import run_sql

    before = tmp_path / "before"
    before.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if path.name < "0006":
            shutil.copy(path, before)
    migrate(empty_database_url, directory=before)
    run_sql(empty_database_url, "INSERT INTO city (name, state) VALUES ('Lyon', 'ARA')")
    stamp = "2026-01-01T00:00:00.000000Z"
    stored = {"id": 1, "name": "Lyon", "state": "ARA", "created_at": stamp, "updated_at": stamp}
    run_sql(empty_database_url,
            "INSERT INTO idempotency_key (key, request_hash, response, expires_at) "
            "VALUES ('old-key', %s, %s, now() + interval '1 hour')",
            (request_hash(LYON), json.dumps(stored)))
    migrate(empty_database_url)

    retry = client_for(DATABASE_URL=empty_database_url).post("/cities", LYON,
                                                               headers=keyed("old-key"))
    assert (retry.status, retry.json) == (201, stored)
    assert retry.header("Idempotent-Replayed") == "true"
    assert retry.header("ETag") == '"20260101000000000000"'
