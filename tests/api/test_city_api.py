"""The `/cities` contract: each route's success and failure responses, as a client sees them."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from cities.http.errors import MAX_BODY_BYTES
from tests.support.lambda_events import HTTP_API_HOST

SPRINGFIELD = {"name": "Springfield", "state": "Illinois"}


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value)


# --- create -----------------------------------------------------------------------------------


def test_create_returns_201_the_city_and_its_location(client, sql):
    reply = client.post("/cities", SPRINGFIELD)

    assert reply.status == 201
    city = reply.json
    assert set(city) == {"id", "name", "state", "created_at", "updated_at"}
    assert isinstance(city["id"], int) and city["id"] >= 1
    assert (city["name"], city["state"]) == ("Springfield", "Illinois")
    assert city["created_at"] == city["updated_at"]
    parse_time(city["created_at"])
    assert reply.header("Location") == f"https://{HTTP_API_HOST}/cities/{city['id']}"
    assert sql("SELECT id, name, state FROM city") == [(city["id"], "Springfield", "Illinois")]


def test_created_city_is_found_at_its_location(client):
    created = client.post("/cities", SPRINGFIELD)
    fetched = client.follow(created.header("Location"))
    assert fetched.status == 200
    assert fetched.json == created.json


def test_create_trims_name_and_state(client):
    reply = client.post("/cities", {"name": "  \tSão Paulo \n", "state": " SP "})
    assert reply.status == 201
    assert (reply.json["name"], reply.json["state"]) == ("São Paulo", "SP")


def test_create_accepts_names_of_exactly_100_characters(client):
    name = "x" * 100
    reply = client.post("/cities", {"name": name, "state": "é" * 100})
    assert reply.status == 201
    assert reply.json["name"] == name


def test_create_same_name_and_state_in_any_case_is_409(client, sql):
    assert client.post("/cities", SPRINGFIELD).status == 201

    reply = client.post("/cities", {"name": "SPRINGFIELD", "state": " illinois "})

    assert reply.status == 409
    assert reply.error_code == "conflict"
    assert set(reply.detail_fields) == {"name", "state"}
    assert sql("SELECT count(*) FROM city") == [(1,)]


def test_same_name_in_another_state_is_a_different_city(client):
    assert client.post("/cities", SPRINGFIELD).status == 201
    assert client.post("/cities", {"name": "Springfield", "state": "Missouri"}).status == 201


# --- read -------------------------------------------------------------------------------------


def test_get_returns_one_city_as_an_object(client, city):
    reply = client.get(f"/cities/{city['id']}")
    assert reply.status == 200
    assert reply.json == city


def test_get_missing_city_is_404(client, city):
    reply = client.get(f"/cities/{city['id'] + 1}")
    assert reply.status == 404
    assert reply.error_code == "not_found"


@pytest.mark.parametrize(
    "raw_id",
    ["abc", "-1", "0", "1.5", "1e3", "9" * 30, str(2**63), "%201", "0x10", "\u0661", "1;DROP"],
)
def test_ids_that_are_not_positive_bigints_are_404(client, raw_id):
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        body = SPRINGFIELD if method in ("PUT", "PATCH") else None
        reply = client.request(method, f"/cities/{raw_id}", body)
        assert reply.status == 404, (method, raw_id, reply)
        assert reply.error_code == "not_found"


def test_an_id_with_leading_zeros_is_not_the_citys_url(client, city):
    """One URL per city: `/cities/02` is refused rather than served as a second copy."""
    reply = client.get(f"/cities/0{city['id']}")
    assert reply.status == 404
    assert reply.json["error"]["message"] == f'No city with id "0{city["id"]}".'


def test_404_messages_quote_the_id_the_same_way(client, city):
    missing, malformed = client.get(f"/cities/{city['id'] + 1}"), client.get("/cities/abc")
    assert missing.json["error"]["message"] == f'No city with id "{city["id"] + 1}".'
    assert malformed.json["error"]["message"] == 'No city with id "abc".'


def test_json_bodies_are_utf_8_not_escapes(client):
    reply = client.post("/cities", {"name": "Zürich", "state": "Auvergne-Rhône-Alpes"})
    assert reply.status == 201
    assert '"Zürich"' in reply.text and "\\u00fc" not in reply.text


def test_largest_bigint_id_is_a_valid_but_missing_city(client):
    assert client.get(f"/cities/{2**63 - 1}").status == 404


# --- replace (PUT) and update (PATCH) ---------------------------------------------------------


def test_put_replaces_both_fields_and_moves_updated_at(client, city):
    reply = client.put(f"/cities/{city['id']}", {"name": " Shelbyville ", "state": "Kentucky"})

    assert reply.status == 200
    updated = reply.json
    assert (updated["id"], updated["name"], updated["state"]) == (
        city["id"], "Shelbyville", "Kentucky",
    )
    assert updated["created_at"] == city["created_at"]
    assert parse_time(updated["updated_at"]) > parse_time(city["updated_at"])
    assert client.get(f"/cities/{city['id']}").json == updated


def test_put_needs_both_fields(client, city):
    reply = client.put(f"/cities/{city['id']}", {"name": "Shelbyville"})
    assert reply.status == 422
    assert reply.detail_fields == ["state"]
    assert client.get(f"/cities/{city['id']}").json == city


def test_patch_changes_only_the_given_field(client, city):
    reply = client.patch(f"/cities/{city['id']}", {"state": "Oregon"})
    assert reply.status == 200
    assert (reply.json["name"], reply.json["state"]) == ("Springfield", "Oregon")

    reply = client.patch(f"/cities/{city['id']}", {"name": "Portland"})
    assert (reply.json["name"], reply.json["state"]) == ("Portland", "Oregon")


def test_every_update_moves_updated_at_even_with_unchanged_values(client, city):
    stamps = [city["updated_at"]]
    for _ in range(3):
        reply = client.put(f"/cities/{city['id']}", SPRINGFIELD)
        assert reply.status == 200
        assert reply.json["created_at"] == city["created_at"]
        stamps.append(reply.json["updated_at"])
    times = [parse_time(s) for s in stamps]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_patch_with_no_fields_is_422(client, city):
    reply = client.patch(f"/cities/{city['id']}", {})
    assert reply.status == 422
    assert reply.detail_fields == ["body"]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_update_of_missing_city_is_404_and_writes_nothing(client, sql, city, method):
    reply = client.request(method, f"/cities/{city['id'] + 100}", {"name": "X", "state": "Y"})
    assert reply.status == 404
    assert reply.error_code == "not_found"
    assert sql("SELECT name, state FROM city") == [("Springfield", "Illinois")]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_update_into_an_existing_pair_is_409_and_changes_nothing(client, method):
    first = client.post("/cities", SPRINGFIELD).json
    second = client.post("/cities", {"name": "Chicago", "state": "Illinois"}).json

    reply = client.request(method, f"/cities/{second['id']}", {"name": "springfield",
                                                               "state": "ILLINOIS"})

    assert reply.status == 409
    assert reply.error_code == "conflict"
    assert client.get(f"/cities/{second['id']}").json == second
    assert client.get(f"/cities/{first['id']}").json == first


def test_a_city_can_be_renamed_to_a_different_case_of_itself(client, city):
    reply = client.put(f"/cities/{city['id']}", {"name": "SPRINGFIELD", "state": "Illinois"})
    assert reply.status == 200
    assert reply.json["name"] == "SPRINGFIELD"


# --- delete -----------------------------------------------------------------------------------


def test_delete_returns_the_deleted_city_and_it_is_gone(client, sql, city):
    reply = client.delete(f"/cities/{city['id']}")
    assert reply.status == 200
    assert reply.json == city
    assert client.get(f"/cities/{city['id']}").status == 404
    assert sql("SELECT count(*) FROM city") == [(0,)]


def test_delete_twice_is_404_the_second_time(client, city):
    assert client.delete(f"/cities/{city['id']}").status == 200
    reply = client.delete(f"/cities/{city['id']}")
    assert reply.status == 404
    assert reply.error_code == "not_found"


# --- trailing slashes -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/cities", "/cities/"])
def test_collection_answers_with_and_without_trailing_slash(client, path):
    created = client.post(path, SPRINGFIELD)
    assert created.status == 201
    listed = client.get(path)
    assert listed.status == 200
    assert listed.json == [created.json]


@pytest.mark.parametrize("suffix", ["", "/"])
def test_item_answers_with_and_without_trailing_slash(client, city, suffix):
    path = f"/cities/{city['id']}{suffix}"
    assert client.get(path).status == 200
    assert client.patch(path, {"state": "Ohio"}).status == 200
    assert client.put(path, SPRINGFIELD).status == 200
    assert client.delete(path).status == 200


def test_doubled_slashes_are_not_redirected(client):
    reply = client.get("/cities//")
    assert reply.status == 404
    assert reply.error_code == "not_found"


# --- routing errors ---------------------------------------------------------------------------


def test_unknown_route_is_a_json_404(client):
    reply = client.get("/towns")
    assert reply.status == 404
    assert reply.header("Content-Type") == "application/json"
    assert reply.json == {
        "error": {"code": "not_found", "message": reply.json["error"]["message"], "details": []}
    }


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/cities", {"GET", "HEAD", "OPTIONS", "POST"}),
        ("PUT", "/cities/", {"GET", "HEAD", "OPTIONS", "POST"}),
        ("POST", "/cities/1", {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"}),
        ("POST", "/health", {"GET", "HEAD", "OPTIONS"}),
    ],
)
def test_wrong_method_is_a_json_405_with_allow(client, method, path, allowed):
    reply = client.request(method, path, SPRINGFIELD if method != "DELETE" else None)
    assert reply.status == 405
    assert reply.error_code == "method_not_allowed"
    assert {m.strip() for m in reply.header("Allow").split(",")} == allowed


# --- bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonx",
     "application/json; charset=latin-1", "multipart/form-data; boundary=x"],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_bodies_that_are_not_json_are_415(client, sql, city, method, content_type):
    path = "/cities" if method == "POST" else f"/cities/{city['id']}"
    reply = client.request(
        method, path, json.dumps({"name": "X", "state": "Y"}),
        headers={"content-type": content_type},
    )
    assert reply.status == 415
    assert reply.error_code == "unsupported_media_type"
    assert sql("SELECT name FROM city") == [("Springfield",)]


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON; charset=UTF-8"],
)
def test_json_content_types_with_or_without_utf8_charset_are_accepted(client, content_type):
    reply = client.post("/cities", json.dumps(SPRINGFIELD), headers={"content-type": content_type})
    assert reply.status == 201


@pytest.mark.parametrize(
    "body",
    [
        "",
        "   ",
        "{",
        '{"name": "X", "state": "Y"',
        "{'name': 'X', 'state': 'Y'}",
        '{"name": "X", "state": "Y"} trailing',
        '{"name": NaN, "state": "Y"}',
        '{"name": Infinity, "state": "Y"}',
        b'{"name": "\xff\xfe", "state": "Y"}',
        "[" * 30_000 + "]" * 30_000,
    ],
    ids=["empty", "blank", "open-brace", "unterminated", "single-quotes", "trailing", "nan",
         "infinity", "invalid-utf8", "deep-nesting"],
)
def test_malformed_json_is_400(client, sql, body):
    reply = client.post("/cities", body)
    assert reply.status == 400
    assert reply.error_code == "bad_request"
    assert sql("SELECT count(*) FROM city") == [(0,)]


def test_bodies_over_64_kib_are_413(client, sql):
    assert MAX_BODY_BYTES == 64 * 1024  # the published limit (its one home: cities.http.errors)
    padding = " " * MAX_BODY_BYTES
    reply = client.post("/cities", json.dumps(SPRINGFIELD) + padding)
    assert reply.status == 413
    assert reply.error_code == "payload_too_large"
    assert sql("SELECT count(*) FROM city") == [(0,)]


def test_a_body_of_exactly_64_kib_is_read(client):
    text = json.dumps(SPRINGFIELD)
    reply = client.post("/cities", text + " " * (MAX_BODY_BYTES - len(text)))
    assert reply.status == 201


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ([], ["body"]),
        ("null", ["body"]),
        ('"Springfield"', ["body"]),
        ("42", ["body"]),
        ({}, ["name", "state"]),
        ({"name": "Springfield"}, ["state"]),
        ({"name": "X", "state": "Y", "country": "US"}, ["country"]),
        ({"name": 5, "state": None}, ["name", "state"]),
        ({"name": ["X"], "state": {"a": 1}}, ["name", "state"]),
        ({"name": True, "state": "Y"}, ["name"]),
        ({"name": "", "state": "Y"}, ["name"]),
        ({"name": "   ", "state": "\t\n"}, ["name", "state"]),
        ({"name": "x" * 101, "state": "Y"}, ["name"]),
        ({"name": "Spring\x00field", "state": "Y"}, ["name"]),
        ({"name": "Spring\x1bfield", "state": "Y\x7fZ"}, ["name", "state"]),
        ({"name": "Spring\nfield", "state": "Y"}, ["name"]),
        ({"name": "X\x85Y", "state": "Y"}, ["name"]),
    ],
)
def test_invalid_city_bodies_are_422_naming_each_field(client, sql, body, fields):
    reply = client.post("/cities", body)
    assert reply.status == 422, reply
    assert reply.error_code == "validation_failed"
    assert sorted(reply.detail_fields) == sorted(fields)
    assert all(d["message"] for d in reply.json["error"]["details"])
    assert sql("SELECT count(*) FROM city") == [(0,)]


def test_lone_surrogates_are_422_not_a_server_error(client, sql):
    reply = client.post("/cities", '{"name": "\\ud800", "state": "Y"}')
    assert reply.status == 422
    assert reply.detail_fields == ["name"]


def test_duplicate_keys_are_422(client, sql):
    reply = client.post("/cities", '{"name": "A", "name": "B", "state": "Y"}')
    assert reply.status == 422
    assert reply.detail_fields == ["name"]
    assert sql("SELECT count(*) FROM city") == [(0,)]


def test_base64_encoded_bodies_are_decoded(client):
    reply = client.post("/cities", {"name": "Zürich", "state": "ZH"}, base64_body=True)
    assert reply.status == 201
    assert reply.json["name"] == "Zürich"


def test_invalid_update_leaves_the_row_untouched(client, sql, city):
    reply = client.patch(f"/cities/{city['id']}", {"name": "ok", "state": ""})
    assert reply.status == 422
    assert client.get(f"/cities/{city['id']}").json == city


# --- the error shape --------------------------------------------------------------------------


def test_errors_never_echo_sql_or_tracebacks(client):
    reply = client.post("/cities", '{"name": "x\', \'y\'); DROP TABLE city; --", "state": "Y"}')
    assert reply.status == 201
    assert client.get("/cities").json[0]["name"] == "x', 'y'); DROP TABLE city; --"
    for bad in (client.post("/cities", "{"), client.get("/cities/abc"), client.get("/x")):
        text = bad.text.lower()
        assert "traceback" not in text and "select" not in text and "psycopg2" not in text
