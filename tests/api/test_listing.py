"""`GET /cities`: filters, sorting, limits and keyset pagination through `Link` headers."""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from cities.http.listing import ListQuery, encode_cursor
from cities.resources.city import CITY
from cities.resources.resource import Filter, Resource
from tests.support.lambda_events import HTTP_API_HOST

NEXT_LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


def add(sql, *pairs: tuple[str, str]) -> None:
    for name, state in pairs:
        sql("INSERT INTO city (name, state) VALUES (%s, %s)", (name, state))


def add_many(sql, count: int, state: str = "S") -> None:
    sql(
        "INSERT INTO city (name, state) SELECT 'City ' || lpad(n::text, 5, '0'), %s "
        "FROM generate_series(1, %s) AS n",
        (state, count),
    )


def next_url(reply) -> str | None:
    link = reply.header("Link")
    if link is None:
        return None
    match = NEXT_LINK.match(link)
    assert match, link
    return match["url"]


def walk(client, target: str) -> tuple[list[dict], int]:
    """Every row reached by following next links from `target`, and the number of pages."""
    rows, pages = [], 0
    reply = client.get(target)
    while True:
        assert reply.status == 200, reply
        rows += reply.json
        pages += 1
        url = next_url(reply)
        if url is None:
            return rows, pages
        reply = client.follow(url)


def names(reply) -> list[str]:
    return [c["name"] for c in reply.json]


def test_empty_table_lists_an_empty_array(client):
    reply = client.get("/cities")
    assert reply.status == 200
    assert reply.json == []
    assert reply.header("Link") is None


def test_default_is_id_order_and_100_rows(client, sql):
    add_many(sql, 150)
    reply = client.get("/cities")
    assert [c["id"] for c in reply.json] == list(range(1, 101))
    assert next_url(reply) is not None


@pytest.mark.parametrize("limit", ["1", "7", "1000"])
def test_limit_sets_the_page_size(client, sql, limit):
    add_many(sql, 1001)
    assert len(client.get("/cities", query={"limit": limit}).json) == int(limit)


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "1.5", "", " 5", "\u0661"])
def test_out_of_range_limits_are_422(client, limit):
    reply = client.get("/cities", query={"limit": limit})
    assert reply.status == 422
    assert reply.detail_fields == ["limit"]


def test_state_filter_is_exact_and_case_insensitive(client, sql):
    add(sql, ("Portland", "Oregon"), ("Portland", "Maine"), ("Salem", "OREGON"),
        ("Eugene", "Oregon Territory"))
    reply = client.get("/cities", query={"state": "oregon"})
    assert names(reply) == ["Portland", "Salem"]
    assert names(client.get("/cities", query={"state": " Oregon "})) == ["Portland", "Salem"]


def test_q_is_a_case_insensitive_substring_of_the_name(client, sql):
    add(sql, ("San Francisco", "CA"), ("SANTA FE", "NM"), ("Boston", "MA"), ("Pisa", "IT"))
    assert names(client.get("/cities", query={"q": "san"})) == ["San Francisco", "SANTA FE"]
    assert names(client.get("/cities", query={"q": "SA"})) == ["San Francisco", "SANTA FE", "Pisa"]
    assert names(client.get("/cities", query={"q": "n f"})) == ["San Francisco"]


def test_q_finds_a_renamed_city_by_its_new_name_only(client, sql):
    add(sql, ("Springfield", "Oregon"))
    assert client.patch("/cities/1", {"name": "Eugene"}).status == 200
    assert names(client.get("/cities", query={"q": "eugene"})) == ["Eugene"]
    assert client.get("/cities", query={"q": "spring"}).json == []


def test_q_of_several_words_matches_them_together_as_written(client, sql):
    add(sql, ("Lake City", "A"), ("Salt Lake City", "B"), ("City Lake", "C"),
        ("Lake  City", "D"), ("Lakeside City", "E"), ("lake city", "F"))
    assert names(client.get("/cities", query={"q": "LAKE city"})) == [
        "Lake City", "Salt Lake City", "lake city"]
    assert names(client.get("/cities", query={"q": "lake  city"})) == ["Lake  City"]
    assert names(client.get("/cities", query={"q": "lake city lake"})) == []
    assert names(client.get("/cities", query={"q": "ke ci"})) == [
        "Lake City", "Salt Lake City", "lake city"]


@pytest.mark.parametrize(
    ("q", "expected"),
    [("%", ["100% Town"]), ("_", ["Under_score"]), ("\\", ["Back\\slash"]),
     ("0%", ["100% Town"]), ("r_s", ["Under_score"])],
)
def test_q_treats_like_wildcards_as_literal_characters(client, sql, q, expected):
    add(sql, ("100% Town", "A"), ("Under_score", "A"), ("Back\\slash", "A"),
        ("Plain", "A"), ("Unders", "A"), ("1000 Town", "A"))
    assert names(client.get("/cities", query={"q": q})) == expected


def test_filters_combine(client, sql):
    add(sql, ("Springfield", "Illinois"), ("Springfield", "Missouri"), ("Chicago", "Illinois"))
    reply = client.get("/cities", query={"q": "spring", "state": "illinois"})
    assert [(c["name"], c["state"]) for c in reply.json] == [("Springfield", "Illinois")]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("id", ["delta", "Alpha", "charlie", "Bravo"]),
        ("-id", ["Bravo", "charlie", "Alpha", "delta"]),
        ("name", ["Alpha", "Bravo", "charlie", "delta"]),
        ("-name", ["delta", "charlie", "Bravo", "Alpha"]),
    ],
)
def test_sort_orders(client, sql, sort, expected):
    add(sql, ("delta", "S"), ("Alpha", "S"), ("charlie", "S"), ("Bravo", "S"))
    assert names(client.get("/cities", query={"sort": sort})) == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "state"}, "sort"),
        ({"sort": "name; DROP TABLE city"}, "sort"),
        ({"sort": "ID"}, "sort"),
        ({"state": ""}, "state"),
        ({"state": "x" * 101}, "state"),
        ({"state": "A\x00B"}, "state"),
        ({"q": ""}, "q"),
        ({"q": "x" * 101}, "q"),
        ({"q": "a\x00"}, "q"),
        ({"page": "2"}, "page"),
        ({"cursor": ""}, "cursor"),
    ],
)
def test_bad_parameters_are_422_naming_the_parameter(client, params, field):
    reply = client.get("/cities", query=params)
    assert reply.status == 422
    assert reply.error_code == "validation_failed"
    assert reply.detail_fields == [field]


def test_repeated_parameters_are_422(client):
    reply = client.get("/cities?limit=1&limit=2")
    assert reply.status == 422
    assert reply.detail_fields == ["limit"]


def test_every_bad_parameter_is_reported_at_once(client):
    reply = client.get("/cities", query={"limit": "0", "sort": "x", "q": ""})
    assert sorted(reply.detail_fields) == ["limit", "q", "sort"]


# --- pagination -------------------------------------------------------------------------------


@pytest.mark.parametrize("sort", ["id", "-id", "name", "-name"])
def test_walking_next_links_visits_every_row_once_in_order(client, sql, sort):
    add_many(sql, 23)
    add(sql, ("city 00003", "T"), ("CITY 00003", "U"))  # ties on lower(name) break by id
    rows, pages = walk(client, f"/cities?limit=5&sort={sort}")
    everything = client.get("/cities", query={"limit": "1000", "sort": sort}).json
    assert len(everything) == 25
    assert rows == everything
    assert pages == 5


STATE_ORDER = {"id": "id", "-id": "id DESC", "name": "lower(name), id",
               "-name": "lower(name) DESC, id DESC"}


@pytest.mark.parametrize("sort", ["id", "-id", "name", "-name"])
def test_walking_a_state_visits_each_of_its_rows_once_in_order(client, sql, sort):
    for n in range(30):
        state = ("Texas", "TEXAS", "Ohio")[n % 3]  # the filter ignores case: two of three match
        add(sql, (f"Town {(n * 7) % 30:02d}", state))
    rows, pages = walk(client, f"/cities?limit=4&state=texas&sort={sort}")
    expected = sql(f"SELECT id FROM city WHERE lower(state) = 'texas' ORDER BY {STATE_ORDER[sort]}")
    assert len(expected) == 20
    assert [c["id"] for c in rows] == [row[0] for row in expected]
    assert pages == 5


def test_next_link_keeps_the_other_parameters(client, sql):
    add_many(sql, 10, state="Texas")
    reply = client.get("/cities", query={"limit": "3", "state": "texas", "q": "city 0",
                                         "sort": "-name"})
    url = next_url(reply)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", HTTP_API_HOST, "/cities")
    params = parse_qs(parts.query)
    assert {k: v for k, v in params.items() if k != "cursor"} == {
        "limit": ["3"], "state": ["texas"], "q": ["city 0"], "sort": ["-name"],
    }
    assert len(params["cursor"]) == 1


def test_no_link_on_the_last_page(client, sql):
    add_many(sql, 4)
    first = client.get("/cities", query={"limit": "2"})
    last = client.follow(next_url(first))
    assert [c["id"] for c in last.json] == [3, 4]
    assert last.header("Link") is None


def test_rows_inserted_or_deleted_while_paging_cause_no_skip_or_repeat(client, sql):
    add_many(sql, 30)
    seen: list[int] = []
    reply = client.get("/cities", query={"limit": "7", "sort": "name"})
    round_ = 0
    while True:
        seen += [c["id"] for c in reply.json]
        url = next_url(reply)
        if url is None:
            break
        round_ += 1
        # Meanwhile: new rows sorting before and after the cursor, and a row already seen goes.
        add(sql, (f"AAA {round_}", "S"), (f"ZZZ {round_}", "S"))
        sql("DELETE FROM city WHERE id = %s", (seen[round_ - 1],))
        reply = client.follow(url)
    original = set(range(1, 31))
    assert len(seen) == len(set(seen)), "a row was repeated"
    assert original <= set(seen), "an existing row was skipped"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),  # signature changed
        lambda c: ("A" if c[0] != "A" else "B") + c[1:],  # payload changed
        lambda c: c.split(".")[0],  # signature removed
        lambda c: c + ".x",
        lambda c: "not a cursor",
        lambda c: "%%%.%%%",
        lambda c: "A.A",  # impossible base64 length
        lambda c: "x" * 5000,
        lambda c: base64.urlsafe_b64encode(b'[1,"id",null,null,[5]]').decode() + ".AAAA",
    ],
)
def test_tampered_or_malformed_cursors_are_422(client, sql, tamper):
    add_many(sql, 5)
    url = next_url(client.get("/cities", query={"limit": "2"}))
    cursor = parse_qs(urlsplit(url).query)["cursor"][0]
    reply = client.get("/cities", query={"limit": "2", "cursor": tamper(cursor)})
    assert reply.status == 422
    assert reply.detail_fields == ["cursor"]


@pytest.mark.parametrize(
    "other",
    [{"sort": "name"}, {"state": "S"}, {"q": "city"}, {"sort": "-id"}],
)
def test_a_cursor_used_with_another_query_is_422(client, sql, other):
    add_many(sql, 5)
    url = next_url(client.get("/cities", query={"limit": "2"}))
    cursor = parse_qs(urlsplit(url).query)["cursor"][0]
    reply = client.get("/cities", query={"limit": "2", "cursor": cursor, **other})
    assert reply.status == 422
    assert reply.detail_fields == ["cursor"]


def test_the_page_size_may_change_between_pages(client, sql):
    add_many(sql, 6)
    url = next_url(client.get("/cities", query={"limit": "2"}))
    cursor = parse_qs(urlsplit(url).query)["cursor"][0]
    reply = client.get("/cities", query={"limit": "3", "cursor": cursor})
    assert [c["id"] for c in reply.json] == [3, 4, 5]


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("id", [0]),
        ("id", [2**63]),
        ("id", ["3"]),
        ("id", [True]),
        ("id", [1, 2]),
        ("name", ["a\x00b", 1]),
        ("name", ["", 1]),
        ("name", ["x" * 101, 1]),
        ("name", [5, 1]),
        ("name", ["a"]),
    ],
)
def test_well_signed_cursors_with_impossible_keys_are_422(client, sort, key):
    cursor = encode_cursor(CITY, ListQuery(sort=sort), key)
    reply = client.get("/cities", query={"sort": sort, "cursor": cursor})
    assert reply.status == 422
    assert reply.detail_fields == ["cursor"]


# Cursors as the API issued them before resources were declared (minted by commit 1baaae3's code):
# a client in the middle of a walk when the new code is deployed carries on.
ISSUED_BEFORE = [
    ({"sort": "id"}, "WzEsImlkIixudWxsLG51bGwsWzJdXQ.Nx-OfzZcwOTXW8de", [3, 4, 5]),
    ({"sort": "name", "q": "city 0"},
     "WzEsIm5hbWUiLG51bGwsImNpdHkgMCIsWyJDaXR5IDAwMDAyIiwyXV0.9ZG9ein1HuqcelJV", [3, 4, 5]),
    ({"sort": "-name", "state": "texas"},
     "WzEsIi1uYW1lIiwidGV4YXMiLG51bGwsWyJUb3duIDA1Iiw3XV0.4dE5r04NuW3NLxqY", []),
]


@pytest.mark.parametrize(("params", "cursor", "ids"), ISSUED_BEFORE)
def test_cursors_issued_by_earlier_versions_keep_working(client, sql, params, cursor, ids):
    add_many(sql, 5)
    reply = client.get("/cities", query={**params, "limit": "3", "cursor": cursor})
    assert reply.status == 200, reply
    assert [c["id"] for c in reply.json] == ids


def with_new_filter(first: bool) -> Resource:
    """City as a later version might declare it: one filter more, first or last in the list."""
    extra = Filter("min_id", lambda raw: (int(raw), None), {"type": "integer"}, "A new filter.")
    filters = (extra, *CITY.filters) if first else (*CITY.filters, extra)
    return Resource(singular="city", plural="cities", fields=CITY.fields, sorts=CITY.sorts[1:],
                    uniques=CITY.uniques, filters=filters, list_filter=CITY.list_filter,
                    order_prefixes=CITY.order_prefixes)


def second_page_cursor(client, params: dict) -> str:
    url = next_url(client.get("/cities", query={**params, "limit": "2"}))
    return parse_qs(urlsplit(url).query)["cursor"][0]


@pytest.mark.parametrize("first", [False, True], ids=["appended", "inserted-first"])
def test_a_new_filter_keeps_the_cursors_already_issued_valid(client, client_for, sql, first):
    add_many(sql, 5)
    issued = [(params, second_page_cursor(client, params), [3, 4, 5])
              for params in ({"sort": "name", "q": "city"}, {"state": "s"})]
    grown = client_for(RESOURCES=(with_new_filter(first),))
    version_1 = [] if first else ISSUED_BEFORE  # its filters are read in declared order
    for params, cursor, ids in [*issued, *version_1]:
        reply = grown.get("/cities", query={**params, "limit": "3", "cursor": cursor})
        assert (reply.status, [c["id"] for c in reply.json]) == (200, ids), params
        reply = grown.get("/cities", query={**params, "min_id": "1", "cursor": cursor})
        assert (reply.status, reply.detail_fields) == (422, ["cursor"]), params


@pytest.mark.parametrize("cursor", ["", ".", "a.", "." + "A" * 16, "a" * 1100 + "." + "A" * 16])
def test_a_cursor_the_schema_refuses_is_422_like_any_other_bad_parameter(client, cursor):
    """An empty cursor too: like an empty limit, state or q, not a silent first page."""
    from jsonschema import Draft202012Validator

    from cities.http.openapi import document

    (schema,) = [p["schema"] for p in document([CITY])["paths"]["/cities"]["get"]["parameters"]
                 if p["name"] == "cursor"]
    assert not Draft202012Validator(schema).is_valid(cursor)
    reply = client.get("/cities", query={"cursor": cursor})
    assert reply.status == 422 and reply.detail_fields == ["cursor"]
