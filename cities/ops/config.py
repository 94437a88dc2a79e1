"""Configuration read from the environment (and `.env` for local runs).

Reading configuration must never crash the import of the Lambda handler: every setting the code
reads is declared once in `SETTINGS`, with its parser, default, valid range and meaning. A value
outside its range is logged once, when the app is built, naming the setting (never a secret's
value), and then either the default is used (a timeout, the log level: harmless defaults) or,
where a default would open what the setting closes, the requests it affects answer a JSON 503
(`UNUSABLE_SETTINGS`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

log = logging.getLogger("cities")

DEFAULT_CONNECT_TIMEOUT = 5
DEFAULT_CONNECT_BUDGET = 10.0
DEFAULT_STATEMENT_TIMEOUT_MS = 5000
DEFAULT_LOG_LEVEL = "INFO"
# Settings that may instead name an SSM Parameter Store parameter: `<SETTING>_SSM_PARAMETER`.
# cities.ops.ssm fetches them at the first request (or migration) and keeps them for the container.
SSM_SETTINGS = ("DATABASE_URL", "MIGRATIONS_DATABASE_URL", "API_KEYS")
# Below the usual idle cut-offs between Lambda and a hosted Postgres (NAT gateways drop idle flows
# after 350 s, poolers and serverless computes suspend after a few minutes).
DEFAULT_CONNECTION_MAX_IDLE = 60.0
# Upper bounds of the time settings. The API function has 25 s (serverless.yml): the SSM read at
# worst (~6 s, cities/ops/ssm.py), the whole connect budget and a statement must fit in it, whatever
# values in range are chosen (tests/unit/test_config.py checks the sum against serverless.yml).
MAX_CONNECT_BUDGET = 10.0
MAX_STATEMENT_TIMEOUT_MS = 8000
# At most an hour of staleness a shared cache may serve (SHARED_CACHE_MAX_AGE; 0 is off).
MAX_SHARED_CACHE_MAX_AGE = 3600


_DEFAULT: Any = object()  # Invalid.keep: use the setting's default


class Invalid(ValueError):
    """Why a setting's text is out of range, in words that never quote a secret.

    `keep` is the value to use anyway where the default would open what the setting closes
    (an SSM parameter name replaced by nothing would let the plain environment value in).
    """

    def __init__(self, reason: str, keep: Any = _DEFAULT) -> None:
        super().__init__(reason)
        self.reason, self.keep = reason, keep


if TYPE_CHECKING:  # a Protocol costs a class built at every cold start: for the checker only

    class Kind(Protocol):
        """How a setting's text becomes its value; `expected` says the valid range in words."""

        expected: str
        blank_is_unset: bool

        def parse(self, text: str) -> Any: ...


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()  # not the other scripts' digits int() takes


def _is_number(text: str, whole: bool) -> bool:
    """ASCII digits, with one decimal point unless `whole`: no sign, exponent, unit, inf, nan."""
    if whole:
        return _is_digits(text)
    integer, point, fraction = text.partition(".")
    return bool(_is_digits(integer) or (point and not integer)) and (
        not point or _is_digits(fraction))


class Number:
    """A plain number in a unit: digits (and a decimal point unless `whole`), nothing else, so
    `5s`, `1e3`, `inf`, `nan` and `-1` are refused rather than guessed at.

    The kinds are plain classes, not dataclasses: building a dataclass class costs most of a
    millisecond, and this module is imported at every cold start.
    """

    blank_is_unset = True

    def __init__(self, unit: str, low: float, high: float, *, whole: bool = False,
                 above_low: bool = False) -> None:
        self.unit, self.low, self.high = unit, low, high
        self.whole = whole
        self.above_low = above_low  # `low` itself is out of range

    @property
    def expected(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        low = f"above {self.low:g}" if self.above_low else f"from {self.low:g}"
        high = f"and at most {self.high:g}" if self.above_low else f"to {self.high:g}"
        return f"{kind} of {self.unit} {low} {high}"

    def parse(self, text: str) -> int | float:
        digits = text.strip()
        if not _is_number(digits, self.whole):
            raise Invalid(f"expected {self.expected}")
        value = float(digits)  # never fails: thousands of digits are simply inf
        if value > self.high or value < self.low or (self.above_low and value == self.low):
            raise Invalid(f"expected {self.expected}")
        return int(value) if self.whole else value


class Flag:
    """On or off, in any case and with surrounding spaces; any other word is out of range."""

    blank_is_unset = True

    def __init__(self, on: tuple[str, ...] = ("1", "true", "yes", "on"),
                 off: tuple[str, ...] = ("0", "false", "no", "off")) -> None:
        self.on, self.off = on, off

    @property
    def expected(self) -> str:
        return f"on: {', '.join(self.on)}; off: {', '.join(self.off)} (any case)"

    def parse(self, text: str) -> bool:
        word = text.strip().lower()
        if word in self.on or word in self.off:
            return word in self.on
        raise Invalid(f"expected {self.expected}")


class LogLevel:
    """A level name Python's logging defines (and its aliases WARN, FATAL), in any case; numbers
    and other loggers' names (TRACE, NOTICE) are out of range."""

    names = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    aliases = {"WARN": "WARNING", "FATAL": "CRITICAL"}  # noqa: RUF012 - read only
    expected = f"one of {', '.join(names)} (any case)"
    blank_is_unset = True

    def parse(self, text: str) -> str:
        name = text.strip().upper()
        name = self.aliases.get(name, name)
        if name not in self.names:
            raise Invalid(f"expected {self.expected}")
        return name


class Hosts:
    """Comma-separated `name` or `name:port` entries, lower-cased: what a Host header may say."""

    expected = "comma-separated host names, each `name` or `name:port`"
    blank_is_unset = True

    def parse(self, text: str) -> tuple[str, ...]:
        from cities.http.public_host import is_host  # paid for only where hosts are listed

        hosts = tuple(host.strip().lower() for host in text.split(",") if host.strip())
        for host in hosts:
            if not is_host(host):
                raise Invalid(f"{host[:60]!r} is not a host; expected {self.expected}")
        return hosts


class Pattern:
    """Text matching `pattern` (surrounding spaces stripped unless `exact`)."""

    blank_is_unset = True

    def __init__(self, pattern: str, expected: str, *, exact: bool = False,
                 keep_when_invalid: bool = False) -> None:
        self.pattern, self.expected = pattern, expected
        self.exact = exact  # read as is by a library: a stray space is not forgiven
        self.keep_when_invalid = keep_when_invalid  # see Invalid.keep

    def parse(self, text: str) -> str:
        value = text if self.exact else text.strip()
        if not re.fullmatch(self.pattern, value, re.ASCII):  # compiled when first used
            raise Invalid(f"expected {self.expected}",
                          keep=value if self.keep_when_invalid else _DEFAULT)
        return value


class KeyList:
    """Comma-separated API keys; set but holding none is out of range (never "writes open")."""

    expected = "comma-separated keys, at least one"
    blank_is_unset = False  # `API_KEYS=" "` is a mistake, not a request for open writes

    def parse(self, text: str) -> tuple[str, ...]:
        keys = parse_api_keys(text)
        if not keys:
            raise Invalid("it holds no key, only separators or spaces", keep=())
        return keys


# Writes per window, and a window's seconds (31 days at most): both positive whole numbers, as
# the RateLimit-Policy field's `q` and `w` must be.
MAX_WRITE_QUOTA = 1_000_000_000
MAX_WRITE_QUOTA_WINDOW = 31 * 86400
DEFAULT_WRITE_QUOTA_WINDOW = 3600


class QuotaOverrides:
    """Comma-separated `writer:N` entries, N writes per window for that writer (a key's name or a
    token's subject, split at the last `:`, since a subject may hold one); the same range as
    WRITE_QUOTA. Set but holding none is out of range, as is a writer named twice."""

    expected = (f"comma-separated writer:N entries, N a whole number of writes from 1 to "
                f"{MAX_WRITE_QUOTA}")
    blank_is_unset = True

    def parse(self, text: str) -> tuple[tuple[str, int], ...]:
        entries: dict[str, int] = {}
        for entry in (part.strip() for part in text.split(",")):
            if not entry:
                continue
            name, colon, number = entry.rpartition(":")
            name, number = name.strip(), number.strip()
            # at most 10 digits before int(): Python refuses to convert thousands of them
            if not (colon and name and _is_digits(number) and len(number) <= 10
                    and 1 <= int(number) <= MAX_WRITE_QUOTA):
                raise Invalid(f"an entry is not writer:N; expected {self.expected}")
            if name in entries:
                raise Invalid(f"a writer is named twice; expected {self.expected}")
            entries[name] = int(number)
        if not entries:
            raise Invalid(f"it holds no entry; expected {self.expected}")
        return tuple(entries.items())


class DatabaseUrl:
    """A connection string libpq can parse; refused ones are kept, so a request that needs the
    database answers 503 saying the URL is malformed rather than that it is missing."""

    expected = "postgresql://user:password@host/dbname or a key=value string"
    blank_is_unset = True

    def parse(self, text: str) -> str:
        from psycopg2.extensions import parse_dsn  # loaded at init anyway (cities.db.connection)

        try:
            params = parse_dsn(text)
        except Exception as exc:
            from cities.db.connection import DatabaseUrlError  # masks what libpq repeats of the URL

            raise Invalid(str(DatabaseUrlError(text, exc)), keep=text) from None
        if not all(_is_digits(port) for port in params.get("port", "5432").split(",") if port):
            raise Invalid("its port is not a number (an unencoded / or : in the password?)",
                          keep=text)
        return text


class Setting(NamedTuple):
    """One environment variable: its parser and range (`kind`), default and one-line meaning.

    `refuses` says which requests answer 503 while the value is out of range; None means the
    default is used instead (with a warning), which is only right when the default is safe.
    `example`: a value to show in .env.example (never a real secret). docs/configuration.md's
    table and .env.example are generated from this table (`make settings-docs`).
    """

    name: str
    kind: Kind
    default: Any
    doc: str
    refuses: str | None = None
    secret: bool = False
    example: str | None = None


# An API Gateway base path mapping: path segments without leading or trailing slash (`v1`,
# `v1/beta`), as serverless-wsgi, which reads it itself, needs it.
_BASE_PATH = r"[A-Za-z0-9$_.+!*'()-]+(/[A-Za-z0-9$_.+!*'()-]+)*"
# An SSM parameter name (`/cities/prod/database-url`, with an optional `:version` or `:label`),
# or its ARN: no spaces, quotes or an unresolved `${...}`.
_SSM_NAME = r"[A-Za-z0-9_.\-/:]{1,2048}"
_DB_REQUESTS = "requests that need the database answer 503"
# An issuer or JWKS URL: https, or plain http to this machine only (a local provider, the tests).
OIDC_URL = r"https://[^\s/?#]+[^\s?#]*|http://(127\.0\.0\.1|localhost)(:[0-9]+)?(/[^\s?#]*)?"
_OIDC_WRITES = "every write (POST, PUT, PATCH, DELETE) answers 503"
_SSM_REQUESTS = "every request answers 503 (the SSM parameters are not read)"
# A quota in doubt is not taken to be off (nor some other number): writes stop until it is fixed.
_QUOTA_WRITES = "every write (POST, PUT, PATCH, DELETE) answers 503"


def _ssm_name(setting: str) -> Setting:
    return Setting(
        f"{setting}_SSM_PARAMETER",
        Pattern(_SSM_NAME, "an SSM parameter name such as /cities/prod/name, or its ARN",
                keep_when_invalid=True),
        None,
        f"on Lambda: name of the SSM SecureString parameter holding {setting}, read at the "
        "first request instead of the value",
        refuses=_SSM_REQUESTS,
    )


SETTINGS: tuple[Setting, ...] = (
    Setting("DATABASE_URL", DatabaseUrl(), None,
            "PostgreSQL URL for the API: required on Lambda, in production Neon's -pooler "
            "endpoint; unset locally, the embedded database",
            refuses=_DB_REQUESTS, secret=True,
            example="postgresql://app:secret@ep-example-123-pooler.eu-central-1.aws.neon.tech/"
                    "cities?sslmode=verify-full&channel_binding=require"),
    Setting("MIGRATIONS_DATABASE_URL", DatabaseUrl(), None,
            "URL for migrations: the direct (non -pooler) endpoint (unset: DATABASE_URL, with a "
            "warning when that is a -pooler host)",
            refuses="migrations fail", secret=True,
            example="postgresql://owner:secret@ep-example-123.eu-central-1.aws.neon.tech/"
                    "cities?sslmode=verify-full&channel_binding=require"),
    Setting("API_KEYS", KeyList(), (), "comma-separated bearer keys that protect writes, each "
            "`name:key` (the name is logged) or a bare key (logged as `key-<n>`); several allow "
            "rotation", refuses="every write (POST, PUT, PATCH, DELETE) answers 503", secret=True,
            example="alice:key1,ci:key2"),
    Setting("JWT_ISSUER", Pattern(OIDC_URL, "an https URL (the `iss` of the tokens)"), None,
            "OIDC issuer whose bearer JWTs may write beside API keys (needs JWT_AUDIENCE)",
            refuses=_OIDC_WRITES, example="https://auth.example.com/"),
    Setting("JWT_AUDIENCE", Pattern(r"[!-~]{1,256}", "the `aud` tokens must name, no spaces"),
            None, "audience the tokens must be issued for (this API's identifier)",
            refuses=_OIDC_WRITES),
    Setting("JWT_JWKS_URL", Pattern(OIDC_URL, "an https URL"), None,
            "the issuer's JWKS (unset: read from its /.well-known/openid-configuration)",
            refuses=_OIDC_WRITES),
    Setting("JWT_WRITE_SCOPE", Pattern(r"[!#-\[\]-~]{1,128}", "one scope token, no spaces"),
            "cities:write", "scope a token needs to write (in `scope` or `scp`)",
            refuses=_OIDC_WRITES),
    Setting("DB_CONNECT_TIMEOUT", Number("seconds", 1, MAX_CONNECT_BUDGET, whole=True),
            DEFAULT_CONNECT_TIMEOUT, "seconds one connection attempt may take (libpq)"),
    Setting("DB_CONNECT_BUDGET", Number("seconds", 0, MAX_CONNECT_BUDGET, above_low=True),
            DEFAULT_CONNECT_BUDGET, "seconds all connection attempts of a request may take, "
            "retries of transient failures (a compute waking up) included"),
    Setting("DB_STATEMENT_TIMEOUT_MS",
            Number("milliseconds", 1, MAX_STATEMENT_TIMEOUT_MS, whole=True),
            DEFAULT_STATEMENT_TIMEOUT_MS, "milliseconds a statement may run before it is "
            "cancelled"),
    Setting("DB_CONNECTION_REUSE", Flag(), False,
            "opt-in: keep one checked connection per warm container (only through a pooler)"),
    Setting("DB_CONNECTION_MAX_IDLE", Number("seconds", 0, 300, above_low=True),
            DEFAULT_CONNECTION_MAX_IDLE, "seconds a kept connection may idle before it is "
            "replaced (below NAT's 350 s)"),
    Setting("REQUIRE_IF_MATCH", Flag(), False,
            "opt-in: PUT, PATCH and DELETE need If-Match (428 without), so no update is lost",
            refuses="PUT, PATCH and DELETE answer 503"),
    Setting("WRITE_QUOTA", Number("writes", 1, MAX_WRITE_QUOTA, whole=True), None,
            "writes each writer (a key's name, a token's subject; all open writes together) "
            "may make per WRITE_QUOTA_WINDOW; 429 past it (unset: no quota)",
            refuses=_QUOTA_WRITES),
    Setting("WRITE_QUOTA_WINDOW", Number("seconds", 1, MAX_WRITE_QUOTA_WINDOW, whole=True),
            DEFAULT_WRITE_QUOTA_WINDOW, "seconds of a quota window, from a writer's first write "
            "in it"),
    Setting("WRITE_QUOTA_OVERRIDES", QuotaOverrides(), (),
            "per-writer quotas, `name:N,...`, in place of WRITE_QUOTA (which may be unset: then "
            "only the writers named have one)",
            refuses=_QUOTA_WRITES),
    Setting("LOG_LEVEL", LogLevel(), DEFAULT_LOG_LEVEL,
            "level of the `cities` logger (WARN and FATAL name WARNING and CRITICAL)"),
    Setting("METRICS", Flag(), False,
            "print one CloudWatch EMF metrics record per request to stdout (on in serverless.yml;"
            " namespace `cities`, dimension `FunctionName`, docs/deploy.md)"),
    Setting("SHARED_CACHE_MAX_AGE",
            Number("seconds", 0, MAX_SHARED_CACHE_MAX_AGE, whole=True), 0,
            "opt-in: seconds shared caches may keep a read of an item or a list (`public, "
            "max-age=N, stale-while-revalidate=N`); 0, the default, makes them ask every time"),
    Setting("PUBLIC_HOSTS", Hosts(), (),
            "hosts that Location and Link URLs may name when the Host header says so (others "
            "give relative URLs, also the default when an entry is not a host)",
            example="api.example.com,localhost:8080"),
    *(_ssm_name(setting) for setting in SSM_SETTINGS),
    Setting("API_GATEWAY_BASE_PATH",
            Pattern(_BASE_PATH, "path segments such as v1 or v1/beta, without slashes around "
                    "them", exact=True),
            None, "base path of a custom-domain mapping, kept in generated URLs (read by "
            "serverless-wsgi)", example="v1",
            refuses="requests through Lambda answer 503 (their paths cannot be read)"),
    Setting("STRIP_STAGE_PATH", Flag(on=("yes", "y", "true", "t", "1"),
                                     off=("no", "n", "false", "f", "0", "off")),
            False, "REST API: leave the stage out of generated URLs (read by serverless-wsgi, "
            "which takes any other word for off)"),
)
BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}


class Problem:
    """A setting whose value is out of range, and what happens instead."""

    def __init__(self, setting: Setting, reason: str, shown: str) -> None:
        self.setting, self.reason = setting, reason
        self.shown = shown  # the value, masked and shortened; empty for a secret

    def __repr__(self) -> str:
        return f"Problem({self.message()!r})"

    def message(self) -> str:
        s = self.setting
        named = f"{s.name}={self.shown}" if self.shown else s.name
        instead = (f"{s.refuses} until it is fixed" if s.refuses
                   else f"using the default {_describe(s.default)}")
        return f"{named} is not valid: {self.reason}; {instead}"


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return "(none)" if value in ((), None) else str(value)


def _shown(text: str) -> str:
    """A non-secret value as the log may show it: quoted (a stray space stays visible), shortened,
    and masked in case a credential was pasted into the wrong setting."""
    from cities.ops.secrets_mask import mask_secrets  # only when a value is out of range

    masked = mask_secrets(text)
    return repr(masked[:60] + ("..." if len(masked) > 60 else ""))


def read(environ: Mapping[str, str]) -> tuple[dict[str, Any], list[Problem]]:
    """Every setting's value by name (its default when unset or out of range), and the problems."""
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for setting in SETTINGS:
        raw = environ.get(setting.name)
        if raw is None or raw == "" or (setting.kind.blank_is_unset and not raw.strip()):
            values[setting.name] = setting.default
            continue
        try:
            values[setting.name] = setting.kind.parse(raw)
        except Invalid as exc:
            values[setting.name] = setting.default if exc.keep is _DEFAULT else exc.keep
            problems.append(Problem(setting, exc.reason, "" if setting.secret else _shown(raw)))
    return values, problems


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
    """Comma-separated entries, `name:key` or a bare key, so a new key can be added before the
    old one is removed; entries are kept as written (`named_api_keys` reads them)."""
    if not raw:
        return ()
    return tuple(key.strip() for key in raw.split(",") if key.strip())


# A writer's name in `name:key`: what logs and quotas show, so it must never be a key's piece.
_WRITER_NAME = r"[A-Za-z][A-Za-z0-9_.-]{0,63}"


def named_api_keys(entries: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(writer name, key) of each `API_KEYS` entry: `name:key` (split at the first `:`, the
    name a word of letters, digits, `_.-`), else a bare key named by its place, `key-1`...

    Two entries may share a name: one writer rotating its key. A bare key is never shown, nor
    any piece of it, so its name says only where it stands in the setting.
    """
    named = []
    for place, entry in enumerate(entries, start=1):
        name, colon, key = entry.partition(":")
        if colon and key.strip() and re.fullmatch(_WRITER_NAME, name.strip(), re.ASCII):
            named.append((name.strip(), key.strip()))
        else:
            named.append((f"key-{place}", entry))
    return tuple(named)


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
    named = named_api_keys(settings.get("API_KEYS") or ())
    if not named:
        return "API keys: none set, writes are open"
    writers = ", ".join(dict.fromkeys(name for name, _ in named))
    return f"API keys: {len(named)} active (writers: {writers})"


# Settings the app reads from its Flask config under their own name (the rest are gathered
# into SSM_PARAMETERS, or read from the environment by serverless-wsgi itself).
_CONFIG_KEYS = (
    "DATABASE_URL", "MIGRATIONS_DATABASE_URL", "API_KEYS", "DB_CONNECT_TIMEOUT",
    "DB_CONNECT_BUDGET", "DB_STATEMENT_TIMEOUT_MS", "LOG_LEVEL", "PUBLIC_HOSTS",
    "REQUIRE_IF_MATCH", "DB_CONNECTION_REUSE", "DB_CONNECTION_MAX_IDLE", "METRICS",
    "SHARED_CACHE_MAX_AGE",
    "JWT_ISSUER", "JWT_AUDIENCE", "JWT_JWKS_URL", "JWT_WRITE_SCOPE",
    "WRITE_QUOTA", "WRITE_QUOTA_WINDOW", "WRITE_QUOTA_OVERRIDES",
)


def token_problems(values: Mapping[str, Any]) -> list[str]:
    """Token settings that only make sense together: an issuer without an audience would take
    any token the issuer signs, for any application, so writes are refused until both are set."""
    if values.get("JWT_ISSUER") and not values.get("JWT_AUDIENCE"):
        return ["JWT_AUDIENCE"]
    return []


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Flask config keys built from environment variables, each problem logged once.

    `UNUSABLE_SETTINGS` names the settings out of range whose requests answer 503 (see
    `Setting.refuses`); `API_KEYS_UNUSABLE` is the one the key check reads.
    """
    values, problems = read(os.environ if environ is None else environ)
    for problem in problems:
        log.log(logging.ERROR if problem.setting.refuses else logging.WARNING, problem.message())
    unusable = tuple(problem.setting.name for problem in problems if problem.setting.refuses)
    for name in token_problems(values):
        log.error("JWT_ISSUER is set but %s is not: every write answers 503 until it is", name)
        unusable += (name,)
    return {
        **{key: values[key] for key in _CONFIG_KEYS},
        "API_KEYS_UNUSABLE": "API_KEYS" if "API_KEYS" in unusable else None,
        "SSM_PARAMETERS": {
            name: values[f"{name}_SSM_PARAMETER"]
            for name in SSM_SETTINGS
            if values[f"{name}_SSM_PARAMETER"]
        },
        "UNUSABLE_SETTINGS": unusable,
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
