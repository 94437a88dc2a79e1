"""Configuration parsing: defaults, rotation-friendly keys, `.env` files that never override."""

from __future__ import annotations

import logging
import os

from cities import config


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
        "DB_CONNECTION_REUSE": False,
        "DB_CONNECTION_MAX_IDLE": config.DEFAULT_CONNECTION_MAX_IDLE,
    }


def test_api_keys_are_comma_separated_and_trimmed():
    assert config.parse_api_keys(" a , b,,c ") == ("a", "b", "c")
    assert config.parse_api_keys("") == ()
    assert config.parse_api_keys(None) == ()


def test_bad_numbers_fall_back_to_the_default_with_a_warning(caplog):
    caplog.set_level(logging.WARNING, logger="cities")
    settings = config.from_env(
        {"DB_CONNECT_TIMEOUT": "soon", "DB_CONNECT_BUDGET": "-1", "DB_STATEMENT_TIMEOUT_MS": "0"}
    )
    assert settings["DB_CONNECT_TIMEOUT"] == config.DEFAULT_CONNECT_TIMEOUT
    assert settings["DB_CONNECT_BUDGET"] == config.DEFAULT_CONNECT_BUDGET
    assert settings["DB_STATEMENT_TIMEOUT_MS"] == config.DEFAULT_STATEMENT_TIMEOUT_MS
    for name in ("DB_CONNECT_TIMEOUT", "DB_CONNECT_BUDGET", "DB_STATEMENT_TIMEOUT_MS"):
        assert name in caplog.text


def test_numbers_are_read():
    settings = config.from_env(
        {"DB_CONNECT_TIMEOUT": "10", "DB_CONNECT_BUDGET": "2.5", "DB_STATEMENT_TIMEOUT_MS": "750"}
    )
    assert (settings["DB_CONNECT_TIMEOUT"], settings["DB_CONNECT_BUDGET"],
            settings["DB_STATEMENT_TIMEOUT_MS"]) == (10, 2.5, 750)


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
