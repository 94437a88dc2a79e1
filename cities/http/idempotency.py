"""Idempotent creates: `POST /cities` with an `Idempotency-Key` header may be retried safely.

Keys are scoped per collection (migration 0006): the same key sent to /cities and to another
collection names two independent requests.

The key is claimed with an INSERT in the request's own transaction, so the claim, the new row
and the stored response commit or vanish together. A concurrent retry with the same key waits on
the claim (a unique-index wait), then replays what the first request committed; if the first
rolled back, the retry proceeds as a fresh create. Keys expire after a day; expired ones are
reclaimed, and swept a few at a time by later keyed requests.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from psycopg2.extensions import connection

from cities.http.errors import ValidationFailed
from cities.resources.validation import detail

HEADER = "Idempotency-Key"
TTL = "24 hours"
# Visible ASCII, like a UUID or a ULID (also the OpenAPI document's pattern for the header).
KEY_PATTERN = "[!-~]{1,255}"
_VALID_KEY = re.compile(KEY_PATTERN)

_CLAIM = """
INSERT INTO idempotency_key (collection, key, request_hash, expires_at)
VALUES (%s, %s, %s, now() + %s::interval)
ON CONFLICT (collection, key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash, response = NULL,
        created_at = now(), expires_at = EXCLUDED.expires_at
    WHERE idempotency_key.expires_at < now()
RETURNING key
"""

_SWEEP = """
DELETE FROM idempotency_key WHERE (collection, key) IN (
    SELECT collection, key FROM idempotency_key WHERE expires_at < now()
    ORDER BY expires_at LIMIT 20 FOR UPDATE SKIP LOCKED
)
"""


def parse_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not _VALID_KEY.fullmatch(raw):
        raise ValidationFailed(
            details=[detail(HEADER, "must be 1 to 255 visible ASCII characters", "header")]
        )
    return raw


def request_hash(fields: dict[str, str]) -> str:
    """Hash of the checked body, so retries differing only in whitespace or order still match."""
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()


def claim(
    conn: connection, collection: str, key: str, fingerprint: str
) -> dict[str, Any] | None:
    """None when this request owns the key; else the stored response to replay (422 on misuse)."""
    with conn.cursor() as cur:
        cur.execute(_SWEEP)
        cur.execute(_CLAIM, (collection, key, fingerprint, TTL))
        if cur.fetchone() is not None:
            return None
        cur.execute(
            "SELECT request_hash, response FROM idempotency_key WHERE collection = %s AND key = %s",
            (collection, key),
        )
        stored_hash, response = cur.fetchone()
    if stored_hash != fingerprint:
        raise ValidationFailed(
            "This Idempotency-Key was already used with a different request body.",
            [detail(HEADER, "was used with a different body", "header")],
        )
    return response


def remember(conn: connection, collection: str, key: str, response: dict[str, Any]) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE idempotency_key SET response = %s::jsonb WHERE collection = %s AND key = %s",
            (json.dumps(response), collection, key),
        )
