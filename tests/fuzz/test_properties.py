"""Property tests (hypothesis): for any input at all, the API answers with a value or a 422,
never a 500, and what it stores is exactly what it acknowledged."""

from __future__ import annotations

import json
import re
import unicodedata

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cities.http.errors import ValidationFailed
from cities.http.listing import CURSOR_PATTERN, ListQuery, decode_cursor, encode_cursor
from cities.resources.city import CITY
from cities.resources.validation import FORBIDDEN_CHARACTERS

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
# Surrogates too; unassigned code points are left out, as their category depends on the
# Unicode version of this Python (the server's rule lists Unicode 15.1's format characters).
any_text = st.text(st.characters(exclude_categories=("Cn",)), max_size=120)
BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
JOINERS = {"\u200c", "\u200d"}


def expected_stored(value: str) -> str | None:
    """The documented rule, from Unicode's categories: NFKC; whitespace and format characters
    (but not bidi controls or line separators) trimmed; then no control, surrogate, separator
    or format character but the joiners inside; 1 to 100 characters before and after."""
    if len(value) > 100:
        return None
    text = unicodedata.normalize("NFKC", value)

    def trimmed(c: str) -> bool:
        category = unicodedata.category(c)
        return (c.isspace() and category not in ("Zl", "Zp")) or (
            category == "Cf" and c not in BIDI_CONTROLS)

    start, end = 0, len(text)
    while start < end and trimmed(text[start]):
        start += 1
    while end > start and trimmed(text[end - 1]):
        end -= 1
    text = text[start:end]
    refused = any(
        unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp")
        or (unicodedata.category(c) == "Cf" and c not in JOINERS)
        for c in text
    )
    if not text or refused or len(text) > 100:
        return None
    return text


@PROPERTY_SETTINGS
@given(name=any_text, state=any_text)
@example(name="\x00", state="x").via("NUL")
@example(name="\ud800", state="x").via("lone surrogate")
@example(name=" " * 99 + "x", state="x" * 100).via("trimmed to fit")
@example(name="Zu\u0308rich\u200b", state="\uff3a\uff28").via("NFD, zero-width space, full-width")
@example(name="\ufeff", state="x").via("only a byte order mark")
@example(name="\u202egnirpS", state="x").via("bidi override")
@example(name="a\u2028b", state="x").via("line separator")
@example(name="\u0646\u200c\u0627", state="x").via("ZWNJ inside")
@example(name="\u3396" * 30, state="x").via("longer than 100 once normalized")
def test_any_name_and_state_round_trip_or_get_422(client, sql, name, state):
    sql("TRUNCATE city RESTART IDENTITY")
    reply = client.post("/cities", json.dumps({"name": name, "state": state}))
    want_name, want_state = expected_stored(name), expected_stored(state)
    if want_name is None or want_state is None:
        assert reply.status == 422, reply
        bad = {f for f, v in (("name", want_name), ("state", want_state)) if v is None}
        assert set(reply.detail_fields) == bad
        assert sql("SELECT count(*) FROM city") == [(0,)]
    else:
        assert reply.status == 201, reply
        assert (reply.json["name"], reply.json["state"]) == (want_name, want_state)
        stored = client.get(f"/cities/{reply.json['id']}").json
        assert (stored["name"], stored["state"]) == (want_name, want_state)


@PROPERTY_SETTINGS
@given(cursor=st.text(max_size=200) | st.binary(max_size=150).map(lambda b: b.hex()))
def test_any_cursor_is_decoded_or_refused_with_422(client, cursor):
    reply = client.get("/cities", query={"cursor": cursor})
    assert reply.status in (200, 422), reply
    if reply.status == 422:
        assert reply.detail_fields == ["cursor"]


@PROPERTY_SETTINGS
@given(
    sort=st.sampled_from(CITY.sort_names),
    state=st.none() | st.text(min_size=1, max_size=5),
    q=st.none() | st.text(min_size=1, max_size=5),
    name=st.text(min_size=1, max_size=100).filter(lambda s: not FORBIDDEN_CHARACTERS.search(s)),
    city_id=st.integers(1, 2**63 - 1),
)
def test_cursors_round_trip_and_any_single_edit_is_refused(sort, state, q, name, city_id):
    filters = {k: v for k, v in (("state", state), ("q", q)) if v is not None}
    query = ListQuery(sort=sort, filters=filters)
    key = [name, city_id] if sort.lstrip("-") == "name" else [city_id]
    cursor = encode_cursor(CITY, query, key)
    assert decode_cursor(CITY, cursor, query) == tuple(key)
    assert re.fullmatch(CURSOR_PATTERN, cursor)  # what the OpenAPI document promises
    for position in range(0, len(cursor), max(1, len(cursor) // 12)):
        replacement = "A" if cursor[position] != "A" else "B"
        edited = cursor[:position] + replacement + cursor[position + 1 :]
        try:
            decode_cursor(CITY, edited, query)
        except ValidationFailed:
            continue
        # base64 may ignore a trailing bit: accepted only if it decodes to the very same key
        assert decode_cursor(CITY, edited, query) == tuple(key)


# Names and terms made of a few words, spaces and LIKE's special characters, so that terms of
# several words (looked up word by word) are frequent and often match.
search_text = st.lists(
    st.sampled_from(["Abba", "baab", "aab", "ab", " ", " ", "  ", "%", "_", "\\"]),
    min_size=1, max_size=6,
).map("".join)


@PROPERTY_SETTINGS
@given(city_names=st.lists(search_text, min_size=1, max_size=12), q=search_text)
@example(city_names=["Abba Baab", "abba  baab", "Baab Abba"], q="ABBA baab").via("two words")
def test_q_lists_exactly_the_names_containing_the_term(client, sql, city_names, q):
    sql("TRUNCATE city RESTART IDENTITY")
    stored = {expected_stored(name) for name in city_names} - {None}
    for name in stored:
        assert client.post("/cities", json.dumps({"name": name, "state": "S"})).status == 201
    reply = client.get("/cities", query={"q": q, "limit": "100"})
    assert reply.status == 200, reply
    assert sorted(c["name"] for c in reply.json) == sorted(
        name for name in stored if q.lower() in name.lower()
    )


# Longer than Python's int() accepts (4300 digits): a 500 if any parameter reached int() as is.
long_digits = st.integers(4250, 5000).flatmap(
    lambda n: st.text("0123456789", min_size=n, max_size=n)
) | st.just("9" * 4301)


@PROPERTY_SETTINGS
@given(digits=long_digits, parameter=st.sampled_from(["limit", "state", "q", "sort", "cursor"]))
def test_a_very_long_number_in_any_query_parameter_is_never_a_500(client, digits, parameter):
    reply = client.get("/cities", query={parameter: digits})
    assert reply.status in (200, 422), reply
    if reply.status == 422:
        assert reply.detail_fields == [parameter]


@PROPERTY_SETTINGS
@given(digits=long_digits, method=st.sampled_from(["GET", "PUT", "PATCH", "DELETE"]))
def test_a_very_long_number_as_an_id_is_404(client, digits, method):
    body = {"name": "N", "state": "S"} if method in ("PUT", "PATCH") else None
    assert client.request(method, f"/cities/{digits}", body).status == 404


@PROPERTY_SETTINGS
@given(digits=long_digits, header=st.sampled_from([
    "authorization", "idempotency-key", "content-length", "x-forwarded-port", "host",
    "x-forwarded-for", "content-type",
]))
def test_a_very_long_number_in_any_header_is_never_a_500(client, sql, digits, header):
    reply = client.post("/cities", {"name": "Nice", "state": "PACA"}, headers={header: digits})
    assert reply.status < 500, reply
    assert client.get("/cities", headers={header: digits}).status < 500
