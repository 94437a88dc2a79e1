-- Idempotency keys are scoped per collection: the same key sent to two collections names two
-- requests. Keys stored before this migration were all sent to /cities. (Adding a column with a
-- constant default does not rewrite the table; the new primary key index is built once.)
ALTER TABLE idempotency_key ADD COLUMN collection text NOT NULL DEFAULT 'cities';
ALTER TABLE idempotency_key ALTER COLUMN collection DROP DEFAULT;
ALTER TABLE idempotency_key DROP CONSTRAINT idempotency_key_pkey;
ALTER TABLE idempotency_key ADD PRIMARY KEY (collection, key);
