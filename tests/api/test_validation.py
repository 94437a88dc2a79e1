"""The text rule for names and states: one rule, enforced by the server and published as the
OpenAPI pattern, which a JSON Schema validator must read the same way."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import unicodedata

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from cities.http.openapi import document
from cities.resources.city import CITY
from cities.resources.validation import (
    MAX_TEXT_LENGTH,
    SEARCH_PATTERN,
    TEXT_PATTERN,
    clean_search,
    clean_text,
)

SETTINGS = settings(max_examples=400, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
TEXT_SCHEMA = document([CITY])["components"]["schemas"]["CityInput"]["properties"]["name"]
TEXT_VALIDATOR = Draft202012Validator(TEXT_SCHEMA)

# The characters the rule is about, mixed with letters, marks and anything else.
TRICKY = (
    " \t\n\r\x0b\x0c\x1c\x85\xa0\u1680\u2000\u200a\u202f\u205f\u3000"  # whitespace
    "\u200b\u200c\u200d\u200e\u2060\ufeff\u00ad\u061c\u180e\U000e0001\U000e0041"  # format
    "\u202a\u202e\u2066\u2069\u2028\u2029"  # bidi controls, separators
    "\x00\x01\x7f\x9f\ud800\udfff"  # controls, lone surrogates
    "Zu\u0308\xfc\uff3a\u3396\u2460\ufb01\u00a8\u0646"  # letters, marks, compatibility forms
)
texts = st.text(st.sampled_from(TRICKY) | st.characters(exclude_categories=("Cn",)),
                max_size=MAX_TEXT_LENGTH + 5)


def server_accepts(value: str) -> bool:
    return clean_text(value)[1] is None


def schema_accepts(value: str) -> bool:
    return TEXT_VALIDATOR.is_valid(value)


def lengthened_past_the_limit(value: str) -> bool:
    """The one documented difference: the schema cannot see NFKC making text longer."""
    return clean_text(value)[1] == f"must be at most {MAX_TEXT_LENGTH} characters once normalized"


@SETTINGS
@given(value=texts)
@example(value="\ufeff").via("U+FEFF: \\s in ECMA-262, not in Python")
@example(value="x\n").via("a Python $ matches before a final newline")
@example(value="\u202egnirpS").via("bidi override at the start")
@example(value="a\u200cb").via("ZWNJ inside")
@example(value="\u3396" * 30).via("NFKC makes it 90 characters longer")
def test_the_server_and_the_published_pattern_give_the_same_verdict(value):
    if re.search("[\ud800-\udfff]", value):  # not Unicode text: outside any pattern's reach
        assert not server_accepts(value)
        return
    if lengthened_past_the_limit(value):
        assert schema_accepts(value)
        return
    assert server_accepts(value) == schema_accepts(value), repr(value)


@SETTINGS
@given(value=texts)
def test_the_stored_form_is_normalized_and_matches_the_published_schema(value):
    stored, reason = clean_text(value)
    if reason:
        return
    assert unicodedata.is_normalized("NFC", stored)
    assert unicodedata.is_normalized("NFKC", stored)
    assert clean_text(stored) == (stored, None)  # stable: stored text is accepted unchanged
    assert schema_accepts(stored)  # a strict client can read every row the server stores


def test_every_code_point_gets_the_same_verdict_alone_and_inside_text():
    """Exhaustive: NFKC never moves a character across the rule's classes."""
    pattern = re.compile(TEXT_PATTERN)
    disagree = []
    for code in range(0x110000):
        if unicodedata.category(chr(code)) in ("Cn", "Cs"):
            continue
        for value in (chr(code), f"a{chr(code)}b"):
            if server_accepts(value) != bool(pattern.search(value)):
                disagree.append(value)
    assert disagree == []


@pytest.mark.skipif(shutil.which("node") is None, reason="node (ECMA-262 regexes) not installed")
def test_the_patterns_compile_in_the_engine_schemathesis_validates_with():
    """jsonschema-rs (Rust): a pattern it cannot compile is silently dropped by schemathesis,
    which then generates any string at all."""
    from schemathesis.core.jsonschema.patterns import is_valid_jsonschema_rs_regex

    assert is_valid_jsonschema_rs_regex(TEXT_PATTERN)
    assert is_valid_jsonschema_rs_regex(SEARCH_PATTERN)


def test_lone_surrogates_are_refused_everywhere(client, sql):
    assert clean_text("a\ud800") == (None, "must be valid Unicode (it holds a lone surrogate)")
    reply = client.post("/cities", json.dumps({"name": "x\ud800", "state": "\udfff"}))
    assert reply.status == 422 and reply.detail_fields == ["name", "state"]
    assert clean_search("a\ud800")[0] is None  # a query string cannot even carry one


@pytest.mark.skipif(shutil.which("node") is None, reason="node (ECMA-262 regexes) not installed")
def test_an_ecma_262_engine_reads_the_patterns_as_python_does_with_and_without_u():
    """JSON Schema patterns are ECMA-262 regexes (`u` mode); many tools compile them without
    the flag (Spectral, Swagger UI's form checks), where an astral character is two UTF-16
    units. Both readings must compile and give Python's verdict, alone and inside text."""
    chars = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) != "Cn"
             and not 0xD800 <= c <= 0xDFFF]
    samples = [*chars, *(f"a{c}b" for c in chars if ord(c) > 0xFFFF),
               "x\n", " x ", "\ufeffx\ufeff", "a\u200cb", "a\u200bb", "\u202ex",
               "\U000e0001Lyon\U000e007f", "Lyon\U0001f3f0", "\U000110bd"]
    script = (
        "const [text, search, samples] = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "const t = new RegExp(text, 'u'), s = new RegExp(search, 'u');"
        "const tn = new RegExp(text), sn = new RegExp(search);"
        "process.stdout.write(JSON.stringify(samples.map(x => [t.test(x), s.test(x), "
        "tn.test(x), sn.test(x)])));"
    )
    result = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True,
                            input=json.dumps([TEXT_PATTERN, SEARCH_PATTERN, samples]))
    text, search = re.compile(TEXT_PATTERN), re.compile(SEARCH_PATTERN)
    python = [[bool(text.search(x)), bool(search.search(x))] * 2 for x in samples]
    assert json.loads(result.stdout) == python


# --- what clients see ----------------------------------------------------------------------

ZURICH = "Z\u00fcrich"
LOOK_ALIKES = {
    "decomposed": "Zu\u0308rich",
    "zero-width space": f"{ZURICH}\u200b",
    "byte order mark": f"\ufeff{ZURICH}",
    "full-width": "\uff3a\u00fc\uff52\uff49\uff43\uff48",
    "no-break spaces": f"\u00a0{ZURICH}\u3000",
}


@pytest.mark.parametrize("spelling", list(LOOK_ALIKES))
def test_look_alikes_are_the_same_city(client, sql, spelling):
    assert client.post("/cities", {"name": ZURICH, "state": "ZH"}).status == 201
    reply = client.post("/cities", {"name": LOOK_ALIKES[spelling], "state": "ZH"})
    assert reply.status == 409, reply
    assert sql("SELECT name FROM city") == [(ZURICH,)]


@pytest.mark.parametrize("spelling", list(LOOK_ALIKES))
def test_a_look_alike_is_stored_as_the_one_spelling_and_found_by_any(client, sql, spelling):
    created = client.post("/cities", {"name": LOOK_ALIKES[spelling], "state": "ZH"})
    assert created.status == 201 and created.json["name"] == ZURICH
    for term in ("Zu\u0308ri", "z\u00fcrich", "\uff3a\u00fc"):
        assert [c["name"] for c in client.get("/cities", query={"q": term}).json] == [ZURICH]


@pytest.mark.parametrize("name", [
    "\u200b", "\ufeff", "\u2060", "\u200b\ufeff \u2060", "\u202egnirpS", "Springs\u202c",
    "\u2066x\u2069", "a\u2028b", "x\u2029", "Zu\u200brich", "a\u00adb",
])
def test_invisible_bidi_and_separator_text_is_refused(client, sql, name):
    reply = client.post("/cities", {"name": name, "state": "S"})
    assert reply.status == 422 and reply.detail_fields == ["name"], reply
    assert sql("SELECT count(*) FROM city") == [(0,)]


@pytest.mark.parametrize("name", [
    "\u0645\u06cc\u200c\u0634\u0648\u062f",  # Persian, with a ZWNJ
    "\u0915\u094d\u200d\u0937",  # Devanagari, with a ZWJ
])
def test_joiners_inside_a_name_are_kept(client, name):
    reply = client.post("/cities", {"name": f"\u200d{name}\u200c", "state": "S"})
    assert reply.status == 201 and reply.json["name"] == name  # ...and trimmed at the ends
