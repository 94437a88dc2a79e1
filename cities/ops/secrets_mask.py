"""Secrets never shown: every password form libpq accepts, and every configured key.

libpq repeats a malformed connection string, or pieces of its password, in its errors
(`invalid percent-encoded token: "..."`, `missing "=" after "..."`, a host name that is the
password's tail after an unencoded `@`), and those errors reach log lines, `handler.migrate`'s
failure, CloudFormation's stack events and the CLI's output. So each configured secret is
remembered where configuration is read, as what its setting says it is (a connection string or
an API key: never guessed from its characters), and everything that leaves the program is masked
with them, plus patterns that catch credentials nobody configured.
"""

from __future__ import annotations

import functools
import logging
import re
from urllib.parse import unquote

MASK = "***"
# Keywords whose values are secrets (libpq 18).
SECRET_KEYWORDS = (
    "password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key",
)
# Every libpq 18 connection keyword (PQconndefaults). A password's later words belong to it until
# one of these starts a new `keyword=`; a keyword missing here only masks a little more.
KEYWORDS = frozenset({
    "service", "user", "password", "passfile", "channel_binding", "connect_timeout", "dbname",
    "host", "hostaddr", "port", "client_encoding", "options", "application_name",
    "fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "sslmode", "sslnegotiation", "sslcompression",
    "sslcert", "sslkey", "sslcertmode", "sslpassword", "sslrootcert", "sslcrl", "sslcrldir",
    "sslsni", "sslkeylogfile", "requirepeer", "require_auth", "ssl_min_protocol_version",
    "ssl_max_protocol_version", "min_protocol_version", "max_protocol_version", "gssencmode",
    "krbsrvname", "gsslib", "gssdelegation", "replication", "target_session_attrs",
    "load_balance_hosts", "scram_client_key", "scram_server_key", "oauth_issuer",
    "oauth_client_id", "oauth_client_secret", "oauth_scope",
})

# Where a setting starts, in key/value (`password = x`) or a URI's query (`?password=x`); its
# name is looked up in the sets above (an alternation of every keyword is slow to compile:
# docs/benchmarks.md, Design measurements).
_SETTING = re.compile(r"(?:^|(?<=[\s?&]))([A-Za-z_]+)\s*=\s*")
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'?", re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)

_SEPARATOR_CHARS = r"@:/?#&=\s'\"\\"
_SEPARATORS = re.compile(rf"[{_SEPARATOR_CHARS}]+")
_MIN_FRAGMENT = 3  # shorter pieces are masked only where they begin or end a quoted token

# The remembered pieces: long ones masked wherever they occur, short ones only at a quoted
# token's edge (`invalid integer value "ab"`, `"cd@host"`), so that ordinary words survive.
# Frozensets, replaced rather than changed: another thread may be masking a line meanwhile.
_anywhere: frozenset[str] = frozenset()
_quoted: frozenset[str] = frozenset()


def connection_passwords(value: str) -> set[str]:
    """Every secret in the connection string `value`, as written and as decoded: a URI's
    userinfo password, its `?password=` parameters, and key/value `password=` (quoted or not).

    A URL pasted with a leading space, a typo in its scheme or none is read by libpq as
    key/value, yet repeated in its error: its userinfo is read all the same."""
    settings = [m for m in _SETTING.finditer(value) if m[1].lower() in KEYWORDS]
    in_query = [value[m.start() - 1:m.start()] in ("?", "&") for m in settings]
    secrets = [i for i, m in enumerate(settings) if m[1].lower() in SECRET_KEYWORDS]
    found: set[str] = set()
    if "://" in value or all(in_query[i] for i in secrets):  # a URI, perhaps without a scheme
        query = next((m.start() for m, q in zip(settings, in_query, strict=True) if q), None)
        userinfo = value[:query].split("://", 1)[-1].rpartition("@")[0]  # up to the host's @
        found.add(userinfo.partition(":")[2])
    for i in secrets:
        # A value ends where the next known setting of its kind starts, so that the words after
        # an unquoted space (which libpq complains about, quoting them) belong to the password.
        end = next((m.start() for m, q in zip(settings[i + 1:], in_query[i + 1:], strict=True)
                    if q == in_query[i]), len(value))
        found.update(_value(value, settings[i].end(), end, in_query[i]))
    found.discard("")
    return found


def _value(text: str, start: int, end: int, in_query: bool) -> set[str]:
    """A setting's value as written and as libpq reads it: percent-decoded in a URI's query;
    in key/value, 'quoted' or not, with backslash escapes."""
    quoted = None if in_query else _QUOTED.match(text, start)
    if quoted:
        return {quoted[0], quoted[1], _ESCAPE.sub(r"\1", quoted[1])}
    raw = text[start:end].rstrip("&? \t\r\n")
    return {raw, unquote(raw) if in_query else _ESCAPE.sub(r"\1", raw)}


def secret_parts(value: str) -> set[str]:
    """The parts of a connection string's secrets never to be shown: each secret, and each piece
    of it between separators (libpq quotes such pieces of a malformed URL)."""
    parts: set[str] = set()
    for secret in connection_passwords(value):
        parts.update((secret, *_SEPARATORS.split(secret)))
    parts.discard("")
    return parts


def _remember(parts: set[str]) -> None:
    global _anywhere, _quoted
    _anywhere = _anywhere | {part for part in parts if len(part) >= _MIN_FRAGMENT}
    _quoted = _quoted | {part for part in parts if len(part) < _MIN_FRAGMENT}


def remember_connection_strings(*values: str | None) -> None:
    """Mask these connection strings' secrets in every later log line and masked error; called
    wherever a database URL setting is read."""
    _remember(set().union(*(secret_parts(value) for value in values if value)))


def remember_keys(*keys: str | None) -> None:
    """Mask these API keys, whole and whatever their characters (`=` padding, `@`, `/`); of a
    `name:key` entry, also the key alone (the name is what logs show)."""
    entries = {key.strip() for key in keys if key and key.strip()}
    named = {entry.partition(":")[2].strip() for entry in entries if ":" in entry}
    _remember(entries | {key for key in named if key})


def remember_secrets(*values: str | None) -> None:
    """A secret whose setting does not say what it is: masked whole, and as a connection string.
    Prefer remember_connection_strings or remember_keys."""
    remember_keys(*values)
    remember_connection_strings(*values)


def mask_secrets(text: str, *connection_strings: str | None) -> str:
    """Hide the credentials of any connection string in `text`, every remembered secret, and the
    secrets of `connection_strings`; hosts and database names stay.

    Most log lines hold none of these: substring checks spare them the regex passes (this runs
    on every request's log line).
    """
    anywhere, quoted = _anywhere, _quoted
    if any(connection_strings):
        extra = set().union(*(secret_parts(s) for s in connection_strings if s))
        anywhere = anywhere | {part for part in extra if len(part) >= _MIN_FRAGMENT}
        quoted = quoted | {part for part in extra if len(part) < _MIN_FRAGMENT}
    for part in sorted([part for part in anywhere if part in text], key=len, reverse=True):
        text = text.replace(part, MASK)
    if quoted and any(part in text for part in quoted):
        text = _at_quote_edges(quoted).sub(MASK, text)
    if "@" in text:
        text = _credential_patterns()[0].sub(rf"\g<scheme>{MASK}@", text)
    lowered = text.lower()
    if "password" in lowered or "oauth_client_secret" in lowered or "scram_" in lowered:
        text = _credential_patterns()[1].sub(rf"\g<key>{MASK}", text)
    return text


@functools.cache
def _credential_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Credentials of connection strings nobody configured: a URI's user:password@ (up to the
    token's last @: a password may hold an unencoded @ or /), and secret keywords' values.
    Compiled on first need: most log lines never need them, and the import stays cheap."""
    url_credentials = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^\s\"'<>]*@", re.IGNORECASE)
    secret_key = "|".join(sorted(SECRET_KEYWORDS, key=len, reverse=True))
    secret_value = re.compile(
        rf"(?P<key>(?P<query>[?&])?(?:{secret_key})\s*=\s*)"
        r"(?(query)[^&\s\"']*|(?:'(?:[^'\\]|\\.)*'?|(?:[^\s\\\"]|\\.)+))",
        re.IGNORECASE,
    )
    return url_credentials, secret_value


@functools.lru_cache(maxsize=8)
def _at_quote_edges(pieces: frozenset[str]) -> re.Pattern[str]:
    """Short pieces where they begin or end a quoted token, as libpq quotes what it repeats."""
    alternatives = "|".join(re.escape(p) for p in sorted(pieces, key=len, reverse=True))
    edge, quote = f"[{_SEPARATOR_CHARS}]", "[\"']"
    return re.compile(
        rf"(?<={quote})(?:{alternatives})(?={edge})|(?<={edge})(?:{alternatives})(?={quote})"
    )


def masked_error(error: BaseException, *connection_strings: str | None) -> str:
    """`Type: message` of an error that leaves the program (a Lambda's failure, a CLI's exit),
    with every secret masked."""
    return mask_secrets(f"{type(error).__name__}: {error}".strip(), *connection_strings)


class MaskSecrets(logging.Filter):
    """Masks the formatted message and any traceback before a handler sees the record."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_secrets(self._formatter.formatException(record.exc_info))
        return True
