"""Configuration read from the environment (and `.env` for local runs).

Reading configuration must never crash the import of the Lambda handler: a missing or malformed
value is logged and the affected requests answer with a JSON error instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("cities")

DEFAULT_CONNECT_TIMEOUT = 5
DEFAULT_CONNECT_BUDGET = 10.0
DEFAULT_STATEMENT_TIMEOUT_MS = 5000
DEFAULT_LOG_LEVEL = "INFO"
# Settings that may instead name an SSM Parameter Store parameter: `<SETTING>_SSM_PARAMETER`.
# cities.ssm fetches them at the first request (or migration) and keeps them for the container.
SSM_SETTINGS = ("DATABASE_URL", "MIGRATIONS_DATABASE_URL", "API_KEYS")
# Below the usual idle cut-offs between Lambda and a hosted Postgres (NAT gateways drop idle flows
# after 350 s, poolers and serverless computes suspend after a few minutes).
DEFAULT_CONNECTION_MAX_IDLE = 60.0
_TRUE = frozenset({"1", "true", "yes", "on"})


def load_dotenv_if_present(path: Path | None = None) -> bool:
    """Load `.env` from the working directory without overriding the real environment.

    python-dotenv is imported only when the file exists, so Lambda (which has no `.env`) never
    pays for the import at cold start.
    """
    path = path or Path.cwd() / ".env"
    if not path.is_file():
        return False
    from dotenv import load_dotenv

    return load_dotenv(path, override=False)


def parse_api_keys(raw: str | None) -> tuple[str, ...]:
    """Comma-separated keys, so a new key can be added before the old one is removed."""
    if not raw:
        return ()
    return tuple(key.strip() for key in raw.split(",") if key.strip())


def api_key_settings(raw: str | None, source: str) -> dict[str, Any]:
    """`API_KEYS` from a raw value, and `API_KEYS_UNUSABLE`: the setting's name when it is set
    but holds no key (only commas, spaces or newlines), so that writes fail closed instead of
    being left open."""
    keys = parse_api_keys(raw)
    return {"API_KEYS": keys, "API_KEYS_UNUSABLE": source if raw and not keys else None}


def describe_api_keys(settings: Mapping[str, Any]) -> str:
    """How many keys protect writes, for the start-up log (never the keys themselves)."""
    if settings.get("API_KEYS_UNUSABLE"):
        return f"API keys: {settings['API_KEYS_UNUSABLE']} holds no key, writes are refused"
    count = len(settings.get("API_KEYS") or ())
    return f"API keys: {count} active" if count else "API keys: none set, writes are open"


def parse_positive(name: str, raw: str | None, default: float, cast: type = int) -> float:
    """A positive number from the environment; anything else logs a warning and keeps `default`."""
    if raw is None or raw.strip() == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        value = 0
    if not value > 0:
        log.warning("%s=%r is not a positive number; using %s", name, raw, default)
        return default
    return value


def parse_flag(raw: str | None) -> bool:
    """An on/off setting: `1`, `true`, `yes`, `on` (any case) mean on; anything else off."""
    return (raw or "").strip().lower() in _TRUE


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Flask config keys built from environment variables."""
    env = os.environ if environ is None else environ
    return {
        "DATABASE_URL": env.get("DATABASE_URL") or None,
        "MIGRATIONS_DATABASE_URL": env.get("MIGRATIONS_DATABASE_URL") or None,
        **api_key_settings(env.get("API_KEYS"), "API_KEYS"),
        "DB_CONNECT_TIMEOUT": parse_positive(
            "DB_CONNECT_TIMEOUT", env.get("DB_CONNECT_TIMEOUT"), DEFAULT_CONNECT_TIMEOUT
        ),
        # Total time for connecting, retries included; keep it below the Lambda timeout.
        "DB_CONNECT_BUDGET": parse_positive(
            "DB_CONNECT_BUDGET", env.get("DB_CONNECT_BUDGET"), DEFAULT_CONNECT_BUDGET, float
        ),
        "DB_STATEMENT_TIMEOUT_MS": parse_positive(
            "DB_STATEMENT_TIMEOUT_MS", env.get("DB_STATEMENT_TIMEOUT_MS"),
            DEFAULT_STATEMENT_TIMEOUT_MS,
        ),
        "LOG_LEVEL": (env.get("LOG_LEVEL") or DEFAULT_LOG_LEVEL).upper(),
        # Hosts (`name` or `name:port`) that generated URLs may name when a request's Host
        # header says so; elsewhere (an ALB, a local server) other Hosts give relative URLs.
        "PUBLIC_HOSTS": tuple(
            host.strip().lower() for host in (env.get("PUBLIC_HOSTS") or "").split(",")
            if host.strip()
        ),
        "SSM_PARAMETERS": {
            name: env[f"{name}_SSM_PARAMETER"].strip()
            for name in SSM_SETTINGS
            if (env.get(f"{name}_SSM_PARAMETER") or "").strip()
        },
        # Opt-in: PUT, PATCH and DELETE need If-Match (428 without), so no update can be lost.
        "REQUIRE_IF_MATCH": parse_flag(env.get("REQUIRE_IF_MATCH")),
        # Opt-in: keep one connection per warm container (see cities.db). Off by default.
        "DB_CONNECTION_REUSE": parse_flag(env.get("DB_CONNECTION_REUSE")),
        "DB_CONNECTION_MAX_IDLE": parse_positive(
            "DB_CONNECTION_MAX_IDLE", env.get("DB_CONNECTION_MAX_IDLE"),
            DEFAULT_CONNECTION_MAX_IDLE, float,
        ),
    }


def migrations_url(config: Mapping[str, Any]) -> str | None:
    """MIGRATIONS_DATABASE_URL, else DATABASE_URL, with a warning when that is Neon's pooler.

    Migrations are safe through a transaction pooler, but a long one holds a pooled server and
    the pooler may cut it off; the direct endpoint is the one meant for them.
    """
    url = config.get("MIGRATIONS_DATABASE_URL")
    if url:
        return url
    url = config.get("DATABASE_URL")
    if url and "-pooler" in _host(url):
        log.warning(
            "MIGRATIONS_DATABASE_URL is not set, so migrations use DATABASE_URL, which is a "
            "pooler endpoint: set MIGRATIONS_DATABASE_URL to the direct (non -pooler) endpoint"
        )
    return url


def _host(url: str) -> str:
    """The URL's host(s), for URLs and key=value strings alike; empty when it cannot be read."""
    from psycopg2.extensions import parse_dsn  # only migrations ask: keep it out of Lambda init

    try:
        return parse_dsn(url).get("host", "")
    except Exception:
        return ""
