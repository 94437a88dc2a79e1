"""Configuration: every setting has a range; a value outside it never breaks the import of the
handler nor makes a request a 500. It is logged once when the app is built, naming the setting
(never a secret), and either its default is used or the requests it affects answer a JSON 503.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import serverless_wsgi
import yaml

from cities.ops import config, ssm

REPO = Path(__file__).resolve().parents[2]
SECRET = "S3cretPw"
BAD_URLS = [
    f" postgresql://app:{SECRET}@127.0.0.1:9/cities",  # a leading space
    f"postgresq://app:{SECRET}@127.0.0.1:9/cities",  # a typo in the scheme
    f"postgresql://app:{SECRET}/x9@127.0.0.1:9/cities",  # an unencoded / in the password
    f"host=127.0.0.1 password={SECRET} dbname",  # a key=value string missing an `=`
]
BAD_SSM_NAMES = ["${ssm:/cities/prod/x}", "/cities/prod/database url", '"/cities/prod/x"']
# Every setting, with values out of its range (a test below checks that none is left out).
BAD_VALUES: dict[str, list[str]] = {
    "DATABASE_URL": BAD_URLS,
    "MIGRATIONS_DATABASE_URL": BAD_URLS,
    "API_KEYS": [",", " , ", " \n "],
    "DB_CONNECT_TIMEOUT": ["0", "-1", "11", "5s", "5.5", "inf", "nan", "1e1", "1_0", "9" * 5000,
                           "\u0665"],  # an Arabic-Indic five: int() would take it
    "DB_CONNECT_BUDGET": ["0", "-1", "10.5", "inf", "-inf", "nan", "3000000000", "5s", "1e1",
                          "9" * 5000],
    "DB_STATEMENT_TIMEOUT_MS": ["0", "-1", "8001", "2147483648", "3000000000", "5000ms", "1.5",
                                "inf", "nan"],
    "DB_CONNECTION_REUSE": ["maybe", "2", "enabled"],
    "DB_CONNECTION_MAX_IDLE": ["0", "-1", "301", "inf", "nan", "60s"],
    "REQUIRE_IF_MATCH": ["maybe", "2", "required", "y"],
    "METRICS": ["emf", "2", "enabled"],
    # Out of range is off (no caching), never a guess at what was meant.
    "SHARED_CACHE_MAX_AGE": ["-1", "3601", "60s", "1.5", "1m", "inf", "9" * 5000, "on"],
    "LOG_LEVEL": ["trace", "notice", "20", "verbose", "NOTSET", "debug!"],
    "PUBLIC_HOSTS": ["https://api.example.com", "api.example.com/", "*.example.com", "a@b",
                     "api.example.com, x y"],
    "DATABASE_URL_SSM_PARAMETER": BAD_SSM_NAMES,
    "MIGRATIONS_DATABASE_URL_SSM_PARAMETER": BAD_SSM_NAMES,
    "API_KEYS_SSM_PARAMETER": BAD_SSM_NAMES,
    "API_GATEWAY_BASE_PATH": ["/v1", "v1/", " v1", "v1 ", "v 1", "v1//beta"],
    "STRIP_STAGE_PATH": ["on", "maybe"],
    "JWT_ISSUER": ["http://issuer.example", "issuer.example", "https://", "https://a b",
                   "https://issuer.example/?x=1", "file:///etc/passwd"],
    "JWT_AUDIENCE": ["two words", "x" * 257],
    "JWT_JWKS_URL": ["ftp://x/jwks", "http://10.0.0.1/jwks", "https://x/jwks#k"],
    "JWT_WRITE_SCOPE": ["a b", 'say"', "a\\b"],
    "WRITE_QUOTA": ["0", "-1", "1000000001", "100/h", "1.5", "1e3", "inf", "9" * 5000],
    "WRITE_QUOTA_WINDOW": ["0", "-1", "2678401", "1h", "60.5", "nan"],
    "WRITE_QUOTA_OVERRIDES": [",", "alice", "alice:", ":5", "alice:0", "alice:-1", "alice:5x",
                              "alice:1,alice:2", "alice:1000000001", "alice:" + "9" * 5000],
}
GOOD_SSM_NAMES = [("/cities/prod/database-url", "/cities/prod/database-url"),
                  (" /cities/prod/x:3 ", "/cities/prod/x:3"),
                  ("arn:aws:ssm:eu-west-1:123456789012:parameter/cities/x",
                   "arn:aws:ssm:eu-west-1:123456789012:parameter/cities/x")]
GOOD_URL = "postgresql://app:pw@db.example.com:5432/cities?sslmode=verify-full"
# Values in range, and what they mean.
GOOD_VALUES: dict[str, list[tuple[str, Any]]] = {
    "DATABASE_URL": [(GOOD_URL, GOOD_URL), ("host=db dbname=cities", "host=db dbname=cities")],
    "MIGRATIONS_DATABASE_URL": [(GOOD_URL, GOOD_URL)],
    "API_KEYS": [(" a , b,,c ", ("a", "b", "c"))],
    "DB_CONNECT_TIMEOUT": [("1", 1), (" 10 ", 10), ("05", 5)],
    "DB_CONNECT_BUDGET": [("0.1", 0.1), ("10", 10.0), (" 2.5 ", 2.5), (".5", 0.5)],
    "DB_STATEMENT_TIMEOUT_MS": [("1", 1), ("750", 750), ("8000", 8000)],
    "DB_CONNECTION_REUSE": [("TRUE", True), (" on ", True), ("0", False), ("Off", False)],
    "DB_CONNECTION_MAX_IDLE": [("12.5", 12.5), ("300", 300.0)],
    "REQUIRE_IF_MATCH": [("1", True), ("Yes", True), ("false", False)],
    "METRICS": [("on", True), ("TRUE", True), ("off", False)],
    "SHARED_CACHE_MAX_AGE": [("0", 0), (" 2 ", 2), ("3600", 3600)],
    "LOG_LEVEL": [("debug ", "DEBUG"), ("Warning", "WARNING"), ("warn", "WARNING"),
                  ("fatal", "CRITICAL"), ("ERROR", "ERROR")],
    "PUBLIC_HOSTS": [("API.example.com, localhost:8080", ("api.example.com", "localhost:8080"))],
    "DATABASE_URL_SSM_PARAMETER": GOOD_SSM_NAMES,
    "MIGRATIONS_DATABASE_URL_SSM_PARAMETER": GOOD_SSM_NAMES,
    "API_KEYS_SSM_PARAMETER": GOOD_SSM_NAMES,
    "API_GATEWAY_BASE_PATH": [("v1", "v1"), ("v1/beta", "v1/beta")],
    "STRIP_STAGE_PATH": [("yes", True), ("T", True), ("no", False)],
    "JWT_ISSUER": [("https://auth.example.com/", "https://auth.example.com/"),
                   ("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Ab",
                    "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Ab"),
                   ("http://127.0.0.1:8080", "http://127.0.0.1:8080")],
    "JWT_AUDIENCE": [("https://cities.example/api", "https://cities.example/api")],
    "JWT_JWKS_URL": [("https://auth.example.com/.well-known/jwks.json",
                      "https://auth.example.com/.well-known/jwks.json")],
    "JWT_WRITE_SCOPE": [("cities:write", "cities:write"), (" api.write ", "api.write")],
    "WRITE_QUOTA": [("1", 1), (" 1000 ", 1000), ("1000000000", 1000000000)],
    "WRITE_QUOTA_WINDOW": [("1", 1), ("3600", 3600), ("2678400", 2678400)],
    "WRITE_QUOTA_OVERRIDES": [(" ci:5000 , alice:10,", (("ci", 5000), ("alice", 10))),
                              ("google-oauth2|1234:7", (("google-oauth2|1234", 7),)),
                              ("urn:user:42:3", (("urn:user:42", 3),))],
}
# Environment variables the code reads that are not settings of this app.
NOT_SETTINGS = {
    "IS_OFFLINE": "set by serverless-offline itself",
    "WERKZEUG_RUN_MAIN": "set by werkzeug's reloader for its child",
    "PGSSLMODE": "libpq's own variable, checked by libpq",
    "PGSSLROOTCERT": "libpq's own variable, checked by libpq",
}


# Settings that are in range only with another one set (an issuer needs an audience).
COMPANIONS = {"JWT_ISSUER": {"JWT_AUDIENCE": "https://cities.example/api"}}


def bad_cases() -> list[Any]:
    return [pytest.param(name, raw, id=f"{name}={raw[:12]!r}")
            for name, values in BAD_VALUES.items() for raw in values]


def test_defaults_when_nothing_is_set():
    settings = config.from_env({})
    assert settings == {
        "DATABASE_URL": None,
        "MIGRATIONS_DATABASE_URL": None,
        "API_KEYS": (),
        "API_KEYS_UNUSABLE": None,
        "DB_CONNECT_TIMEOUT": config.DEFAULT_CONNECT_TIMEOUT,
        "DB_CONNECT_BUDGET": config.DEFAULT_CONNECT_BUDGET,
        "DB_STATEMENT_TIMEOUT_MS": config.DEFAULT_STATEMENT_TIMEOUT_MS,
        "LOG_LEVEL": "INFO",
        "PUBLIC_HOSTS": (),
        "SSM_PARAMETERS": {},
        "REQUIRE_IF_MATCH": False,
        "METRICS": False,
        "SHARED_CACHE_MAX_AGE": 0,
        "DB_CONNECTION_REUSE": False,
        "DB_CONNECTION_MAX_IDLE": config.DEFAULT_CONNECTION_MAX_IDLE,
        "JWT_ISSUER": None,
        "JWT_AUDIENCE": None,
        "JWT_JWKS_URL": None,
        "JWT_WRITE_SCOPE": "cities:write",
        "WRITE_QUOTA": None,
        "WRITE_QUOTA_WINDOW": config.DEFAULT_WRITE_QUOTA_WINDOW,
        "WRITE_QUOTA_OVERRIDES": (),
        "UNUSABLE_SETTINGS": (),
    }


def test_every_setting_the_code_reads_is_declared_with_good_and_bad_values():
    sources = [*(REPO / "cities").glob("*.py"), REPO / "handler.py", Path(serverless_wsgi.__file__)]
    read = {name for path in sources for name in re.findall(
        r"os\.environ(?:\.get\(|\[)\s*[\"']([A-Z][A-Z0-9_]+)[\"']", path.read_text())}
    declared = set(config.BY_NAME)
    assert read - set(NOT_SETTINGS) <= declared
    assert set(BAD_VALUES) == declared == set(GOOD_VALUES)


@pytest.mark.parametrize(("name", "raw"), bad_cases())
def test_a_value_out_of_range_is_logged_once_and_falls_back_or_refuses(name, raw, caplog):
    setting = config.BY_NAME[name]
    caplog.set_level(logging.INFO, logger="cities")
    settings = config.from_env({name: raw})  # never raises
    (line,) = caplog.records  # one line, naming the setting
    assert line.getMessage().startswith(name), line.getMessage()
    assert SECRET not in caplog.text
    if setting.refuses:
        assert line.levelno == logging.ERROR and settings["UNUSABLE_SETTINGS"] == (name,)
    else:
        assert line.levelno == logging.WARNING and settings["UNUSABLE_SETTINGS"] == ()
        assert config.read({name: raw})[0][name] == setting.default


@pytest.mark.parametrize("name", list(GOOD_VALUES))
def test_values_in_range_are_read_without_a_word(name, caplog):
    caplog.set_level(logging.INFO, logger="cities")
    for raw, expected in GOOD_VALUES[name]:
        values, problems = config.read({name: raw})
        assert (values[name], problems) == (expected, []), raw
        assert config.from_env({name: raw, **COMPANIONS.get(name, {})})["UNUSABLE_SETTINGS"] == ()
    assert caplog.records == []


@pytest.mark.parametrize("name", list(BAD_VALUES))  # every setting (checked above)
def test_an_empty_value_means_unset(name, caplog):
    caplog.set_level(logging.INFO, logger="cities")
    setting = config.BY_NAME[name]
    blanks = [""] if name == "API_KEYS" else ["", "  "]  # `API_KEYS=" "` refuses writes
    for raw in blanks:
        values, problems = config.read({name: raw})
        assert (values[name], problems) == (setting.default, [])
    assert caplog.records == []


def test_a_refused_security_setting_is_never_taken_to_be_off():
    settings = config.from_env({"API_KEYS": " ", "DATABASE_URL_SSM_PARAMETER": "${ssm:/x}",
                                "API_KEYS_SSM_PARAMETER": "/cities/keys?"})
    assert settings["API_KEYS_UNUSABLE"] == "API_KEYS"
    # Invalid names stay: the plain DATABASE_URL / API_KEYS are never used instead.
    assert settings["SSM_PARAMETERS"] == {"DATABASE_URL": "${ssm:/x}",
                                          "API_KEYS": "/cities/keys?"}
    with pytest.raises(ssm.SsmConfigError, match="API_KEYS_SSM_PARAMETER"):
        ssm.load(dict(settings))


def test_the_longest_times_in_range_fit_in_the_api_function():
    api = yaml.safe_load((REPO / "serverless.yml").read_text())["functions"]["api"]
    ssm_worst = ssm.MAX_ATTEMPTS * (ssm.CONNECT_TIMEOUT + ssm.READ_TIMEOUT)
    budget = config.BY_NAME["DB_CONNECT_BUDGET"].kind.high
    statement = config.BY_NAME["DB_STATEMENT_TIMEOUT_MS"].kind.high / 1000
    assert config.BY_NAME["DB_CONNECT_TIMEOUT"].kind.high <= budget
    assert ssm_worst + budget + statement < api["timeout"]


def test_every_setting_is_documented():
    readme = (REPO / "docs" / "configuration.md").read_text()
    example = (REPO / ".env.example").read_text()
    for name in config.BY_NAME:
        assert f"`{name}`" in readme, name
        assert re.search(rf"^(# )?{name}=", example, re.MULTILINE), name


def test_api_keys_are_comma_separated_and_trimmed():
    assert config.parse_api_keys(" a , b,,c ") == ("a", "b", "c")
    assert config.parse_api_keys("") == ()
    assert config.parse_api_keys(None) == ()


def test_migrations_prefer_their_own_url():
    assert config.migrations_url({"DATABASE_URL": "a", "MIGRATIONS_DATABASE_URL": "b"}) == "b"
    assert config.migrations_url({"DATABASE_URL": "a", "MIGRATIONS_DATABASE_URL": None}) == "a"


def test_dotenv_fills_gaps_but_never_overrides_the_environment(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("CITIES_TEST_FROM_FILE=file\nCITIES_TEST_BOTH=file\n")
    monkeypatch.setenv("CITIES_TEST_BOTH", "environment")
    monkeypatch.delenv("CITIES_TEST_FROM_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    try:
        assert config.load_dotenv_if_present() is True
        assert os.environ["CITIES_TEST_FROM_FILE"] == "file"
        assert os.environ["CITIES_TEST_BOTH"] == "environment"
    finally:
        os.environ.pop("CITIES_TEST_FROM_FILE", None)


def test_no_dotenv_file_is_fine(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config.load_dotenv_if_present() is False


# Through the real entry points: for each case, the handler module is imported with that one
# value set (in a fresh interpreter, then re-imported for the next case), three requests come
# through HTTP API events and the migrate function answers a CloudFormation request.
PROBE = r"""
import importlib, json, logging, os, sys

from tests.support.lambda_events import Client
from tests.support.response_url import ResponseURL, request

records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append((record.levelno, record.getMessage()))
logging.getLogger("cities").addHandler(Keep())

cases, base, results, handler = json.load(sys.stdin), dict(os.environ), [], None
response_url = ResponseURL()
for index, (name, raw) in enumerate(cases):
    os.environ.clear()
    os.environ.update(base, **{name: raw})
    records.clear()
    handler = importlib.reload(handler) if handler else importlib.import_module("handler")
    at_import = [message for level, message in records if level >= logging.WARNING]
    client = Client(handler.api)
    replies = {
        "GET /cities": client.get("/cities"),
        "POST /cities": client.post("/cities", {}),
        "PUT /cities/999999": client.put("/cities/999999", {"name": "Reno", "state": "Nevada"}),
    }
    answer = handler.migrate(request(response_url.url), None)
    results.append({
        "case": [name, index], "at_import": at_import, "logs": [m for _, m in records],
        "replies": {k: [r.status, r.headers, r.text] for k, r in replies.items()},
        "migrate": [answer["Status"], answer["Reason"]],
    })
print(json.dumps(results))
"""

NORMAL = {"GET /cities": 200, "POST /cities": 422, "PUT /cities/999999": 404,
          "migrate": "SUCCESS"}
EVERYTHING_REFUSED = {"GET /cities": 503, "POST /cities": 503, "PUT /cities/999999": 503}
# What a value out of range changes, for the settings that refuse requests.
REFUSED = {
    "DATABASE_URL": {"GET /cities": 503, "PUT /cities/999999": 503, "migrate": "FAILED"},
    "MIGRATIONS_DATABASE_URL": {"migrate": "FAILED"},
    "API_KEYS": {"POST /cities": 503, "PUT /cities/999999": 503},
    "REQUIRE_IF_MATCH": {"PUT /cities/999999": 503},
    **{name: {"POST /cities": 503, "PUT /cities/999999": 503}
       for name in ("JWT_ISSUER", "JWT_AUDIENCE", "JWT_JWKS_URL", "JWT_WRITE_SCOPE")},
    "DATABASE_URL_SSM_PARAMETER": {**EVERYTHING_REFUSED, "migrate": "FAILED"},
    "MIGRATIONS_DATABASE_URL_SSM_PARAMETER": {**EVERYTHING_REFUSED, "migrate": "FAILED"},
    "API_KEYS_SSM_PARAMETER": {**EVERYTHING_REFUSED, "migrate": "FAILED"},
    "API_GATEWAY_BASE_PATH": EVERYTHING_REFUSED,
    **{name: {"POST /cities": 503, "PUT /cities/999999": 503}
       for name in ("WRITE_QUOTA", "WRITE_QUOTA_OVERRIDES")},
}


def run_probe(cases: list[tuple[str, str]], database_url: str, cwd: Path) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], input=json.dumps(cases),
        cwd=cwd,  # no .env here
        env={**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_no_value_out_of_range_breaks_the_import_or_makes_a_500(database_url, sql, tmp_path):
    cases = [(name, raw) for name, values in BAD_VALUES.items() for raw in values]
    for result in run_probe(cases, database_url, tmp_path):
        name = result["case"][0]
        expected = {**NORMAL, **REFUSED.get(name, {})}
        (logged,) = result["at_import"]  # once, at start, naming the setting
        assert logged.startswith(name), result
        assert SECRET not in json.dumps(result)  # in no reply, log line or FAILED reason
        assert result["migrate"][0] == expected["migrate"], result
        for request, (status, headers, text) in result["replies"].items():
            assert status == expected[request], (result["case"], request, text)
            assert headers["content-type"] == "application/json", (result["case"], request)
            if status == 503:
                assert json.loads(text)["error"]["code"] == "service_unavailable"
                assert headers["retry-after"], (result["case"], request)


@pytest.mark.parametrize("level", ["trace", "debug ", "notice", "20"])
def test_the_log_levels_that_broke_the_import_start_both_functions(
    level, database_url, sql, tmp_path
):
    (result,) = run_probe([("LOG_LEVEL", level)], database_url, tmp_path)
    assert result["migrate"][0] == "SUCCESS"
    assert result["replies"]["GET /cities"][0] == 200
