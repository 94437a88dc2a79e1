"""No lost updates: every item carries a strong ETag, GET answers 304 to a current
If-None-Match, and writes with If-Match apply only to the version the client saw (RFC 9110).
Checked on city and on the test-only region: the shared resource code gives both."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cities.db import store
from cities.http.conditional import etag
from cities.resources.city import CITY
from tests.support.resources.region import REGION

STRONG_ETAG = re.compile(r'^"[0-9]{20}"$')

RESOURCES = [
    ("/cities", {"name": "Springfield", "state": "Illinois"}, "name"),
    ("/regions", {"name": "France", "iso_code": "FR"}, "name"),
]


@pytest.fixture(params=RESOURCES, ids=["cities", "regions"])
def target(request, resources_client):
    """(client, the new item's URL, a valid body, a field to change)."""
    path, body, field = request.param
    created = resources_client.post(path, body)
    assert created.status == 201
    return resources_client, f"{path}/{created.json['id']}", body, field


def write(client, method: str, url: str, body: dict, field: str, value: str, **headers):
    payload = {**body, field: value} if method == "PUT" else {field: value}
    return client.request(method, url, None if method == "DELETE" else payload, headers=headers)


# --- ETags ------------------------------------------------------------------------------------


def test_every_response_carrying_one_item_has_its_strong_etag(target):
    client, url, body, field = target
    read = client.get(url)
    tags = [read.header("ETag")]
    for method in ("PUT", "PATCH"):
        reply = write(client, method, url, body, field, f"Renamed by {method}")
        assert reply.status == 200
        tags.append(reply.header("ETag"))
        assert client.get(url).header("ETag") == reply.header("ETag")
    deleted = client.delete(url)
    tags.append(deleted.header("ETag"))
    assert all(STRONG_ETAG.match(tag) for tag in tags), tags
    assert len(set(tags)) == 3  # PUT and PATCH each made a new version; DELETE returns the last
    assert tags[-1] == tags[-2]


def test_a_created_item_and_its_idempotent_replay_carry_the_same_etag(resources_client):
    body = {"name": "Lyon", "state": "ARA"}
    first = resources_client.post("/cities", body, headers={"idempotency-key": "etag-1"})
    url = f"/cities/{first.json['id']}"
    assert STRONG_ETAG.match(first.header("ETag"))
    assert resources_client.get(url).header("ETag") == first.header("ETag")
    resources_client.patch(url, {"state": "Rhône"})
    replay = resources_client.post("/cities", body, headers={"idempotency-key": "etag-1"})
    # The replay is the first response, ETag included: the version created then, now stale.
    assert replay.header("Idempotent-Replayed") == "true"
    assert replay.header("ETag") == first.header("ETag")
    stale = resources_client.put(url, body, headers={"if-match": replay.header("ETag")})
    assert stale.status == 412


def test_two_writes_in_one_clock_tick_still_make_two_versions(resources_client, database_url):
    created = resources_client.post("/cities", {"name": "Tick", "state": "T"}).json
    conn = psycopg2.connect(database_url)
    try:
        with conn:  # one transaction: now() is the same instant for both writes
            first = store.update(conn, CITY, created["id"], {"name": "One"})
            second = store.update(conn, CITY, created["id"], {"name": "Two"})
    finally:
        conn.close()
    assert etag(first) != etag(second)
    assert second["updated_at"] > first["updated_at"]
    assert resources_client.get(f"/cities/{created['id']}").header("ETag") == etag(second)


# --- GET and If-None-Match --------------------------------------------------------------------


def test_get_with_a_current_if_none_match_is_304_with_the_etag_and_no_body(target):
    client, url, *_ = target
    tag = client.get(url).header("ETag")
    for header in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        reply = client.get(url, headers={"if-none-match": header})
        assert reply.status == 304, header
        assert reply.header("ETag") == tag
        assert reply.text == ""


@pytest.mark.parametrize("header", ['"00000000000000000000"', '"stale"', "W/\"x\"", "garbage"])
def test_get_with_another_if_none_match_is_200(target, header):
    client, url, *_ = target
    reply = client.get(url, headers={"if-none-match": header})
    assert reply.status == 200
    assert reply.header("ETag") == client.get(url).header("ETag")


def test_get_after_a_change_is_200_with_the_new_etag(target):
    client, url, body, field = target
    old = client.get(url).header("ETag")
    new = write(client, "PATCH", url, body, field, "Changed").header("ETag")
    reply = client.get(url, headers={"if-none-match": old})
    assert (reply.status, reply.header("ETag")) == (200, new)


def test_get_with_a_failing_if_match_is_412(target):
    client, url, *_ = target
    tag = client.get(url).header("ETag")
    assert client.get(url, headers={"if-match": tag}).status == 200
    reply = client.get(url, headers={"if-match": '"00000000000000000000"'})
    assert (reply.status, reply.error_code) == (412, "precondition_failed")


def test_get_of_a_missing_item_is_404_whatever_the_preconditions(resources_client):
    for headers in ({"if-none-match": "*"}, {"if-match": "*"}, {"if-none-match": '"x"'}):
        assert resources_client.get("/cities/999", headers=headers).status == 404


# --- conditional writes -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_a_write_with_the_current_etag_applies(target, method):
    client, url, body, field = target
    tag = client.get(url).header("ETag")
    reply = write(client, method, url, body, field, "Current", **{"if-match": tag})
    assert reply.status == 200
    if method == "DELETE":
        assert client.get(url).status == 404
    else:
        assert reply.json[field] == "Current"
        assert reply.header("ETag") != tag


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(
    "if_match",
    ["stale", "weak", '"not-ours"', '"99999999999999999999"', "garbage", ""],
)
def test_a_write_with_another_etag_is_412_and_changes_nothing(target, sql, method, if_match):
    client, url, body, field = target
    before = client.get(url)
    tag = before.header("ETag")
    if if_match == "stale":
        write(client, "PATCH", url, body, field, "Moved on")
        before = client.get(url)
        if_match = tag
    elif if_match == "weak":
        if_match = f"W/{tag}"  # If-Match compares strongly: a weak tag never matches
    reply = write(client, method, url, body, field, "Lost update", **{"if-match": if_match})
    assert (reply.status, reply.error_code) == (412, "precondition_failed")
    assert reply.detail_fields == ["If-Match"]
    assert client.get(url).json == before.json


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_if_match_lists_and_star(target, method):
    client, url, body, field = target
    tag = client.get(url).header("ETag")
    listed = write(client, method, url, body, field, "Listed",
                   **{"if-match": f'"00000000000000000001", {tag}'})
    assert listed.status == 200
    if method != "DELETE":
        assert write(client, method, url, body, field, "Star", **{"if-match": "*"}).status == 200


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_a_write_to_a_missing_item_is_404_even_with_if_match(resources_client, method):
    """RFC 9110 13.2.1: preconditions are ignored when the answer without them would not be
    2xx; so a missing id stays the contract's 404, for a listed tag and for `*` alike."""
    for header in ('"20260101000000000000"', "*"):
        reply = write(resources_client, method, "/cities/999", {"name": "X", "state": "Y"},
                      "name", "Z", **{"if-match": header})
        assert (reply.status, reply.error_code) == (404, "not_found")


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_if_none_match_on_a_write_is_412_when_it_matches(target, method):
    client, url, body, field = target
    before = client.get(url)
    for header in ("*", before.header("ETag"), f"W/{before.header('ETag')}"):
        reply = write(client, method, url, body, field, "No", **{"if-none-match": header})
        assert (reply.status, reply.detail_fields) == (412, ["If-None-Match"]), header
    assert client.get(url).json == before.json
    ok = write(client, method, url, body, field, "Yes", **{"if-none-match": '"x"'})
    assert ok.status == 200


def test_a_failed_precondition_is_checked_after_the_body(target):
    client, url, *_ = target
    reply = client.put(url, {"nonsense": 1}, headers={"if-match": '"stale"'})
    assert reply.status == 422  # nothing is read or written for a body that cannot apply


def test_a_unique_conflict_under_a_holding_precondition_is_still_409(resources_client):
    a = resources_client.post("/cities", {"name": "A", "state": "S"})
    b = resources_client.post("/cities", {"name": "B", "state": "S"})
    reply = resources_client.patch(f"/cities/{b.json['id']}", {"name": "a"},
                                   headers={"if-match": b.header("ETag")})
    assert (reply.status, reply.error_code) == (409, "conflict")
    assert a.status == 201


# --- strict mode ------------------------------------------------------------------------------


@pytest.fixture
def strict(client_for):
    return client_for(REQUIRE_IF_MATCH=True)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_strict_mode_requires_if_match_on_writes(strict, sql, method):
    created = strict.post("/cities", {"name": "Strict", "state": "S"})
    assert created.status == 201  # creating needs no precondition
    url = f"/cities/{created.json['id']}"
    for headers in ({}, {"if-match": "*"}):
        reply = write(strict, method, url, {"name": "Strict", "state": "S"}, "name", "Lost",
                      **headers)
        assert (reply.status, reply.error_code) == (428, "precondition_required"), headers
        assert reply.detail_fields == ["If-Match"]
    assert strict.get(url).json == created.json
    reply = write(strict, method, url, {"name": "Strict", "state": "S"}, "name", "Kept",
                  **{"if-match": created.header("ETag")})
    assert reply.status == 200


def test_strict_mode_leaves_reads_alone(strict, sql):
    created = strict.post("/cities", {"name": "Read", "state": "S"})
    assert strict.get(f"/cities/{created.json['id']}").status == 200
    assert strict.get("/cities").status == 200


# --- races ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_two_clients_writing_with_the_same_etag_exactly_one_wins(target, sql, method):
    client, url, body, field = target
    for round_ in range(5):
        if method == "DELETE" and round_:
            created = client.post(url.rsplit("/", 1)[0], body)
            url = created.header("Location").split(".com", 1)[1]
        tag = client.get(url).header("ETag")
        start = threading.Barrier(2)

        def attempt(n: int, tag: str = tag, url: str = url, start=start, round_=round_):
            start.wait()
            return write(client, method, url, body, field, f"Client {n} round {round_}",
                         **{"if-match": tag})

        with ThreadPoolExecutor(max_workers=2) as pool:
            replies = list(pool.map(attempt, range(2)))
        # The loser of a DELETE race finds no item at all: 404, as without If-Match.
        loser = 404 if method == "DELETE" else 412
        statuses = [r.status for r in replies]
        assert sorted(statuses) == sorted([200, loser]), statuses
        winner = next(r for r in replies if r.status == 200)
        now = client.get(url)
        if method == "DELETE":
            assert now.status == 404
        else:
            assert now.json == winner.json  # the loser changed nothing
            assert now.header("ETag") == winner.header("ETag")


# --- any interleaving -------------------------------------------------------------------------

steps = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from(["read", "PUT", "PATCH"]),
              st.sampled_from(["Alpha", "Beta", "Gamma"])),
    min_size=1, max_size=12,
)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(steps=steps)
def test_any_interleaving_of_conditional_writes_leaves_the_last_successful_one(
    resources_client, sql, steps
):
    """Three clients each write with the ETag they last read: a write succeeds exactly when no
    other write came in between, and the row ends as the last successful write left it."""
    sql("TRUNCATE region, district RESTART IDENTITY")
    created = resources_client.post("/regions", {"name": "Start", "iso_code": "ST"})
    url = f"/regions/{created.json['id']}"
    last_success = created
    seen = [created.header("ETag")] * 3  # each client's copy
    for number, (who, action, value) in enumerate(steps):
        if action == "read":
            seen[who] = resources_client.get(url).header("ETag")
            continue
        body = {"name": f"{value} {number}", "iso_code": "ST"}
        if action == "PATCH":
            body = {"name": body["name"]}
        reply = resources_client.request(action, url, body, headers={"if-match": seen[who]})
        current = last_success.header("ETag")
        if seen[who] == current:
            assert reply.status == 200, reply
            last_success = reply
            seen[who] = reply.header("ETag")
        else:
            assert reply.status == 412, reply
    final = resources_client.get(url)
    assert final.json == last_success.json
    assert final.header("ETag") == last_success.header("ETag")
    assert set(final.json) == set(REGION.column_names)


# --- documentation ----------------------------------------------------------------------------


def test_openapi_documents_etags_and_the_conditional_answers(resources_client):
    spec = resources_client.get("/openapi.json").json
    for plural in ("cities", "regions"):
        item = spec["paths"][f"/{plural}/{{id}}"]
        assert {"304", "412"} <= set(item["get"]["responses"])
        assert "ETag" in item["get"]["responses"]["304"]["headers"]
        assert "If-None-Match" in {p["name"] for p in item["get"]["parameters"]}
        for method in ("put", "patch", "delete"):
            assert {"412", "428"} <= set(item[method]["responses"])
            assert "If-Match" in {p["name"] for p in item[method]["parameters"]}
            assert "ETag" in item[method]["responses"]["200"]["headers"]
        assert "ETag" in spec["paths"][f"/{plural}"]["post"]["responses"]["201"]["headers"]
    codes = spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
    assert {"precondition_failed", "precondition_required"} <= set(codes["enum"])
