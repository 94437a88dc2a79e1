"""Per-writer write quotas: N writes per window for each writer, 429 past it with Retry-After,
and every write answering RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers-11),
parsed here as RFC 9651 Structured Fields by a real parser.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import http_sf
import pytest

from cities.http.auth import Writer
from cities.http.quota import counter_key

KEYS = ("alice:alice-key", "bob:bob-key", "carol:carol-key")
HOUR = 3600


def as_(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {name}-key"}


def policy(reply: Any) -> dict[str, int]:
    """The one `writes` policy of RateLimit-Policy: its parameters (q, w)."""
    ((name, params),) = http_sf.parse(reply.header("RateLimit-Policy").encode(), tltype="list")
    assert name == "writes"  # a String (sf-string), as the draft requires of a policy's name
    return dict(params)


def limit(reply: Any) -> dict[str, int]:
    """The one service limit of RateLimit: its parameters (r, t)."""
    ((name, params),) = http_sf.parse(reply.header("RateLimit").encode(), tltype="list")
    assert name == "writes"
    return dict(params)


@pytest.fixture
def quota_client(client_for: Any) -> Any:
    """An app with named keys and the given quota settings."""
    def build(**settings: Any) -> Any:
        return client_for(API_KEYS=KEYS, **settings)
    return build


def create(api: Any, name: str, writer: str = "alice", **kwargs: Any) -> Any:
    return api.post("/cities", {"name": name, "state": "Oregon"}, headers={
        **as_(writer), **kwargs.pop("headers", {})}, **kwargs)


def counted(sql: Any) -> dict[str, int]:
    return dict(sql("SELECT writer, writes FROM write_quota"))


def test_without_a_quota_writes_carry_no_fields_and_nothing_is_counted(quota_client, sql):
    api = quota_client()
    reply = create(api, "Salem")
    assert reply.status == 201
    assert reply.header("RateLimit-Policy") is None and reply.header("RateLimit") is None
    assert counted(sql) == {}


def test_every_write_answers_its_policy_and_what_is_left(quota_client, sql):
    api = quota_client(WRITE_QUOTA=4, WRITE_QUOTA_WINDOW=HOUR)
    created = create(api, "Salem")
    path = f"/cities/{created.json['id']}"
    replies = [
        created,
        api.put(path, {"name": "Eugene", "state": "Oregon"}, headers=as_("alice")),
        api.patch(path, {"state": "OR"}, headers=as_("alice")),
        api.delete(path, headers=as_("alice")),
    ]
    assert [r.status for r in replies] == [201, 200, 200, 200]
    for reply in replies:
        assert policy(reply) == {"q": 4, "w": HOUR}
    assert [limit(r)["r"] for r in replies] == [3, 2, 1, 0]
    resets = [limit(r)["t"] for r in replies]
    assert all(1 <= t <= HOUR for t in resets) and resets == sorted(resets, reverse=True)
    assert counted(sql) == {"api_key:alice": 4}


def test_past_the_quota_a_write_is_429_in_the_error_shape_and_changes_nothing(quota_client, sql):
    api = quota_client(WRITE_QUOTA=2, WRITE_QUOTA_WINDOW=HOUR)
    first = create(api, "Salem")
    assert create(api, "Eugene").status == 201
    before = sql("SELECT id, name, state, updated_at FROM city ORDER BY id")

    refused = [create(api, "Bend"),
               api.put(f"/cities/{first.json['id']}", {"name": "Bend", "state": "OR"},
                       headers=as_("alice")),
               api.delete(f"/cities/{first.json['id']}", headers=as_("alice"))]

    for reply in refused:
        assert reply.status == 429
        assert reply.error_code == "too_many_requests"
        assert reply.json["error"]["details"] == []
        assert policy(reply) == {"q": 2, "w": HOUR}
        left = limit(reply)
        assert left["r"] == 0
        assert int(reply.header("Retry-After")) == left["t"] and 1 <= left["t"] <= HOUR
    assert sql("SELECT id, name, state, updated_at FROM city ORDER BY id") == before
    assert counted(sql) == {"api_key:alice": 2}


def test_other_writers_are_unaffected(quota_client, sql):
    api = quota_client(WRITE_QUOTA=1)
    assert create(api, "Salem").status == 201
    assert create(api, "Eugene").status == 429
    bob = create(api, "Eugene", "bob")
    assert bob.status == 201
    assert limit(bob)["r"] == 0
    assert counted(sql) == {"api_key:alice": 1, "api_key:bob": 1}


def test_an_override_replaces_the_default_for_its_writer(quota_client):
    api = quota_client(WRITE_QUOTA=1, WRITE_QUOTA_OVERRIDES=(("bob", 3),))
    assert policy(create(api, "Salem")) == {"q": 1, "w": HOUR}
    replies = [create(api, f"Town {n}", "bob") for n in range(4)]
    assert [r.status for r in replies] == [201, 201, 201, 429]
    assert {policy(r)["q"] for r in replies} == {3}


def test_overrides_alone_limit_only_the_writers_they_name(quota_client, sql):
    api = quota_client(WRITE_QUOTA_OVERRIDES=(("bob", 1),))
    assert [create(api, f"Town {n}", "bob").status for n in range(2)] == [201, 429]
    free = [create(api, f"Free {n}", "carol") for n in range(3)]
    assert [r.status for r in free] == [201, 201, 201]
    assert all(r.header("RateLimit-Policy") is None for r in free)
    assert counted(sql) == {"api_key:bob": 1}


def test_an_idempotent_replay_is_not_counted_and_is_served_even_at_the_quota(quota_client, sql):
    api = quota_client(WRITE_QUOTA=2)
    first = create(api, "Salem", headers={"Idempotency-Key": "k-1"})
    replay = create(api, "Salem", headers={"Idempotency-Key": "k-1"})
    assert replay.header("Idempotent-Replayed") == "true"
    assert limit(first)["r"] == limit(replay)["r"] == 1
    last = create(api, "Eugene", headers={"Idempotency-Key": "k-2"})
    assert limit(last)["r"] == 0
    again = create(api, "Eugene", headers={"Idempotency-Key": "k-2"})
    assert (again.status, again.json) == (201, last.json)  # its response was lost: here it is
    assert create(api, "Bend", headers={"Idempotency-Key": "k-3"}).status == 429
    assert counted(sql) == {"api_key:alice": 2}


def test_a_write_that_wrote_nothing_costs_nothing(quota_client, sql):
    api = quota_client(WRITE_QUOTA=3)
    assert create(api, "Salem").status == 201
    missing = api.put("/cities/999999", {"name": "Bend", "state": "OR"}, headers=as_("alice"))
    assert missing.status == 404 and limit(missing)["r"] == 2
    taken = create(api, "Salem")  # the database refuses it: no count, and the policy only
    assert taken.status == 409
    assert policy(taken) == {"q": 3, "w": HOUR} and taken.header("RateLimit") is None
    invalid = api.post("/cities", {"name": ""}, headers=as_("alice"))
    assert invalid.status == 422 and invalid.header("RateLimit") is None
    assert counted(sql) == {"api_key:alice": 1}


def test_an_unauthenticated_write_answers_no_quota_fields(quota_client):
    api = quota_client(WRITE_QUOTA=3)
    reply = api.post("/cities", {"name": "Salem", "state": "Oregon"},
                     headers={"authorization": "Bearer nobody"})
    assert reply.status == 401
    assert reply.header("RateLimit-Policy") is None and reply.header("RateLimit") is None


def test_a_writer_refused_writes_again_once_its_window_has_ended(quota_client, sql):
    """The window lives in the database: ending it there (as an hour passing would) reopens it."""
    api = quota_client(WRITE_QUOTA=1, WRITE_QUOTA_WINDOW=HOUR)
    assert create(api, "Salem").status == 201
    assert create(api, "Eugene").status == 429
    sql("UPDATE write_quota SET window_start = window_start - interval '3600 seconds'")
    reopened = create(api, "Eugene")
    assert reopened.status == 201 and limit(reopened) == {"r": 0, "t": HOUR}
    assert counted(sql) == {"api_key:alice": 1}


def test_a_new_window_starts_by_the_databases_clock(quota_client, sql):
    """A one-second window: the test sleeps in the database until the end the row records, so
    the next write's transaction starts after it, however slow the machine."""
    api = quota_client(WRITE_QUOTA=100, WRITE_QUOTA_WINDOW=1)
    assert create(api, "Salem").status == 201
    ((started, writes),) = sql("SELECT window_start, writes FROM write_quota")
    assert writes == 1
    sql("SELECT pg_sleep_until(%s + interval '1 second')", (started,))
    after = create(api, "Eugene")
    assert after.status == 201 and limit(after)["r"] >= 99  # the first write's unit is back
    ((restarted, writes),) = sql("SELECT window_start, writes FROM write_quota")
    assert restarted >= started + timedelta(seconds=1) and writes == 1


def test_open_writes_share_one_anonymous_quota(client_for, sql):
    """No key nor issuer: no identities, so the stage's quota caps all writes together."""
    api = client_for(WRITE_QUOTA=2)
    replies = [api.post("/cities", {"name": f"Town {n}", "state": "OR"}) for n in range(3)]
    assert [r.status for r in replies] == [201, 201, 429]
    assert counted(sql) == {"open:anonymous": 2}
    wider = client_for(WRITE_QUOTA=2, WRITE_QUOTA_OVERRIDES=(("anonymous", 5),))
    reply = wider.post("/cities", {"name": "Bend", "state": "OR"})
    assert reply.status == 201 and policy(reply)["q"] == 5 and limit(reply)["r"] == 2


def test_key_names_and_token_subjects_are_counted_apart() -> None:
    assert counter_key(Writer("ci", "api_key")) != counter_key(Writer("ci", "token"))
    long = counter_key(Writer("x" * 5000, "token"))
    assert long.startswith("token:sha256:") and len(long) < 300
