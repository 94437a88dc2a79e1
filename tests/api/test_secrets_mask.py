"""No form of a secret is ever shown: every way libpq accepts a password, through every exit.

libpq repeats a malformed connection string, or pieces of its password, in its errors. Each
form below is fed to the real libpq (the API's connect, `handler.migrate`, the CLI), and what
each exit shows is checked: the API's reply and log lines, the migrate function's error, the
FAILED reason PUT to CloudFormation's ResponseURL (readable in stack events), and the output of
`python -m cities migrate`. Every exit must still say what libpq complained about.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import json
import logging
import os
import traceback
from collections.abc import Callable
from typing import Any, NamedTuple

import psycopg2
import psycopg2.extensions
import pytest

from cities import create_app
from cities.ops import config, secrets_mask
from cities.ops.secrets_mask import mask_secrets, remember_connection_strings, remember_keys
from tests.db.test_main import cli_env, run_cli
from tests.deploy.test_custom_resource import LambdaContext
from tests.support.response_url import ResponseURL, request


class Form(NamedTuple):
    url: str
    shown_never: tuple[str, ...]  # the password's pieces, as libpq would repeat them
    says: str  # libpq's complaint, which every exit still shows


FORMS = {
    # URI userinfo: postgresql://user:password@host/db
    "userinfo": Form(
        "postgresql://app:PwPlain9@127.0.0.1:x9/cities", ("PwPlain9",),
        'invalid integer value "x9"'),
    "userinfo percent-encoded": Form(
        "postgresql://app:PwEnc%40Od3d%2Fpw9@127.0.0.1:x9/cities",
        ("PwEnc", "Od3d", "pw9", "PwEnc@Od3d/pw9"), 'invalid integer value "x9"'),
    "userinfo bad % escape": Form(
        "postgresql://app:PwBad%zzEscape9@127.0.0.1:9/cities", ("PwBad", "Escape9"),
        "invalid percent-encoded token"),
    "userinfo unencoded @": Form(
        "postgresql://app:PwAt@Unencoded9@127.0.0.1:9/cities", ("PwAt", "Unencoded9"),
        "could not translate host name"),
    "userinfo unencoded /": Form(
        "postgresql://app:PwSlash/Unencoded9@127.0.0.1:9/cities", ("PwSlash", "Unencoded9"),
        "invalid integer value"),
    "userinfo unencoded :": Form(
        "postgresql://app:PwColon:Unencoded9@127.0.0.1:x9/cities", ("PwColon", "Unencoded9"),
        'invalid integer value "x9"'),
    "URL with a leading space": Form(
        " postgresql://app:PwLeading9@127.0.0.1:9/cities", ("PwLeading9",), 'missing "="'),
    "URL with a scheme typo": Form(
        "postgresq://app:PwTypo9@127.0.0.1:9/cities", ("PwTypo9",), 'missing "="'),
    "URL without a scheme": Form(
        "app:PwNoScheme9@127.0.0.1:9/cities", ("PwNoScheme9",), 'missing "="'),
    # URI query parameter: ?password=... or &password=...
    "?password= percent-encoded": Form(
        "postgresql://app@127.0.0.1:x9/cities?password=PwQuery%26Enc%3Doded9",
        ("PwQuery", "Enc", "oded9"), 'invalid integer value "x9"'),
    "?password= bad % escape": Form(
        "postgresql://app@127.0.0.1:9/cities?password=PwQuery%zzFirst9", ("PwQuery", "First9"),
        "invalid percent-encoded token"),
    "&password= bad % escape": Form(
        "postgresql://127.0.0.1:9/cities?user=app&password=PwQuery%zzSecond9&sslmode=disable",
        ("PwQuery", "Second9"), "invalid percent-encoded token"),
    "?password= with %00": Form(
        "postgresql://app@127.0.0.1:9/cities?password=PwNul%00Byte9", ("PwNul", "Byte9"),
        "forbidden value %00"),
    "?password= unencoded &": Form(
        "postgresql://app@127.0.0.1:9/cities?password=PwAmp&Unencoded9", ("PwAmp", "Unencoded9"),
        'missing key/value separator "="'),
    # key/value: password=..., quoted with \' and \\ escapes or not
    "key/value unquoted space": Form(
        "host=127.0.0.1 port=9 dbname=cities password=PwKv Space9", ("PwKv", "Space9"),
        'missing "=" after'),
    "key/value spaced =": Form(
        "host=127.0.0.1 port=9 password = PwSpaced Equals9 dbname=cities",
        ("PwSpaced", "Equals9"), 'missing "=" after'),
    "key/value unquoted space and =": Form(
        "host=127.0.0.1 port=9 password=PwKvEq Sp=ace9", ("PwKvEq", '"Sp"', "ace9"),
        "invalid connection option"),
    "key/value quoted with escapes": Form(
        "host=127.0.0.1 port=x9 password='PwQuo\\'tedQ Back\\\\slash9' dbname=cities",
        ("PwQuo", "tedQ", "Back", "slash9"), 'invalid integer value "x9"'),
    "key/value escaped space": Form(
        "host=127.0.0.1 port=x9 password=PwEsc\\ aped9", ("PwEsc", "aped9"),
        'invalid integer value "x9"'),
    "key/value unterminated quote": Form(
        "host=127.0.0.1 port=9 password='PwUnterminated Quote9",
        ("PwUnterminated", "Quote9"), "unterminated quoted string"),
}


def libpq_error(url: str) -> str:
    """What libpq says about `url`: parsing first, then connecting (to nothing listening)."""
    try:
        psycopg2.extensions.parse_dsn(url)
        psycopg2.connect(url, connect_timeout=1).close()
    except psycopg2.Error as exc:
        return str(exc)
    raise AssertionError(f"libpq accepted {url!r}")


@pytest.fixture(autouse=True)
def nothing_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no remembered secret: masking must not rest on an earlier test."""
    monkeypatch.setattr(secrets_mask, "_anywhere", frozenset())
    monkeypatch.setattr(secrets_mask, "_quoted", frozenset())


def assert_hidden(form: Form, shown: str) -> None:
    assert form.says in shown, shown
    for piece in form.shown_never:
        assert piece not in shown, (piece, shown)


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS)
def test_libpq_repeats_the_password_and_masking_hides_it(form: Form) -> None:
    message = libpq_error(form.url)
    assert_hidden(form, mask_secrets(message, form.url))
    remember_connection_strings(form.url)  # as create_app and ssm.load do
    assert_hidden(form, mask_secrets(message))


def rendered(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


@pytest.fixture
def exits(client_for: Any, handler_module: Any, monkeypatch: pytest.MonkeyPatch,
          caplog: pytest.LogCaptureFixture) -> dict[str, Callable[[str], str]]:
    """Each exit a configured URL's error can leave by, and all it shows."""
    caplog.set_level(logging.DEBUG)

    def api(url: str) -> str:
        reply = client_for(DATABASE_URL=url, DB_CONNECT_BUDGET=0.1).get("/cities")
        assert reply.status == 503 and reply.error_code == "service_unavailable", reply.text
        assert "127.0.0.1" not in reply.text  # the reply names no host either
        return reply.text + "\n" + rendered(caplog)

    def use_migrations_url(url: str) -> None:  # as Lambda configures the migrate function
        app = create_app(config.from_env({"MIGRATIONS_DATABASE_URL": url,
                                          "DB_CONNECT_BUDGET": "0.1"}))
        monkeypatch.setattr(handler_module, "app", app)

    def migrate_error(url: str) -> str:
        use_migrations_url(url)
        with pytest.raises(handler_module.MigrationFailed) as raised:
            handler_module.migrate({}, None)
        return "".join(traceback.format_exception(raised.value)) + rendered(caplog)

    def failed_reason(url: str) -> str:
        use_migrations_url(url)
        response_url = ResponseURL()
        try:
            handler_module.migrate(request(response_url.url), LambdaContext())
        finally:
            response_url.close()
        (answer,) = response_url.received
        assert answer["Status"] == "FAILED"
        return answer["Reason"] + "\n" + json.dumps(answer) + "\n" + rendered(caplog)

    def cli(url: str) -> str:
        result = run_cli("migrate", env=cli_env(DATABASE_URL=url, DB_CONNECT_BUDGET="0.1"))
        assert result.returncode == 1 and "migration failed" in result.stderr, result.stderr
        return result.stdout + result.stderr

    return {"API reply and log": api, "migrate error": migrate_error,
            "CloudFormation reason": failed_reason, "CLI output": cli}


@pytest.mark.parametrize("exit_name", ["API reply and log", "migrate error",
                                       "CloudFormation reason", "CLI output"])
@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS)
def test_no_exit_shows_any_form_of_a_password(form: Form, exit_name: str, exits: dict) -> None:
    assert_hidden(form, exits[exit_name](form.url))


def test_short_pieces_are_masked_where_libpq_quotes_them_and_ordinary_words_stay() -> None:
    url = "postgresql://app:ab@cd@127.0.0.1:9/cities"  # the host libpq reads is "cd@127.0.0.1"
    remember_connection_strings(url)
    message = libpq_error(url)
    assert '"cd@127.0.0.1"' in message
    assert mask_secrets(message) == message.replace('"cd@', '"***@')
    assert mask_secrets("about cd and ab tabs") == "about cd and ab tabs"


@pytest.mark.parametrize("key", [
    "abc@def=", "c2VjcmV0LWtleQ==", "k3y:with/slash+plus=", "ab", "x", "password=inside",
])
def test_every_configured_api_key_is_masked_whatever_its_characters(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    create_app({"API_KEYS": (key, "other-key")})
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cities"):
        logging.getLogger("cities").error('rejected "%s" and %s', key, "other-key")
    assert rendered(caplog) == 'ERROR cities rejected "***" and ***'


def test_remembering_a_key_never_masks_it_as_a_connection_string() -> None:
    remember_keys("password=k3y-a")
    assert mask_secrets("the k3y-a is here") == "the k3y-a is here"  # only the key, whole
    assert mask_secrets("password=k3y-a") == "***"


def libpq_keywords() -> set[str]:
    """Every connection keyword of the libpq psycopg2 uses (PQconndefaults)."""
    wheel_libs = os.path.join(os.path.dirname(os.path.dirname(psycopg2.__file__)),
                              "psycopg2_binary.libs", "libpq*")
    path = next(iter(glob.glob(wheel_libs)), None) or ctypes.util.find_library("pq")
    if path is None:
        pytest.skip("no libpq library found to ask for its keywords")
    libpq = ctypes.CDLL(path)

    class Option(ctypes.Structure):
        _fields_ = [("keyword", ctypes.c_char_p), ("envvar", ctypes.c_char_p),
                    ("compiled", ctypes.c_char_p), ("val", ctypes.c_char_p),
                    ("label", ctypes.c_char_p), ("dispchar", ctypes.c_char_p),
                    ("dispsize", ctypes.c_int)]

    libpq.PQconndefaults.restype = ctypes.POINTER(Option)
    libpq.PQconninfoFree.argtypes = [ctypes.POINTER(Option)]
    options = libpq.PQconndefaults()
    keywords, i = set(), 0
    while options[i].keyword:
        keywords.add(options[i].keyword.decode())
        i += 1
    libpq.PQconninfoFree(options)
    return keywords


def test_the_keywords_that_end_a_password_are_libpqs() -> None:
    """A password's later words are part of it until a libpq keyword starts a new setting."""
    keywords = libpq_keywords()
    assert keywords <= secrets_mask.KEYWORDS
    assert {k for k in keywords if "password" in k or "secret" in k} <= set(
        secrets_mask.SECRET_KEYWORDS)
