-- Idempotency keys for POST /cities: a retried create returns the first response instead of a
-- 409 or a second row. The response is stored in the same transaction as the row it describes.
CREATE TABLE idempotency_key (
    key text PRIMARY KEY CONSTRAINT idempotency_key_length CHECK (char_length(key) BETWEEN 1 AND 255),
    request_hash text NOT NULL,
    response jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

-- Expired keys are swept a few at a time, oldest first.
CREATE INDEX idempotency_key_expiry ON idempotency_key (expires_at);
