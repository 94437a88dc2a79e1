-- The schema that cities/db/migrations/ builds, as pg_dump --schema-only prints it
-- (without its settings and its own -- comments). Generated: `make schema`; checked by
-- tests/db/test_schema.py. Never edit it by hand, and never apply it: add a migration.

CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;

COMMENT ON EXTENSION pg_trgm IS 'text similarity measurement and index searching based on trigrams';

CREATE TABLE public.city (
    id bigint NOT NULL,
    name text NOT NULL,
    state text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    name_lower text GENERATED ALWAYS AS (lower(name)) STORED,
    CONSTRAINT city_name_length CHECK (((char_length(name) >= 1) AND (char_length(name) <= 100))),
    CONSTRAINT city_state_length CHECK (((char_length(state) >= 1) AND (char_length(state) <= 100)))
);
ALTER TABLE ONLY public.city ALTER COLUMN name_lower SET STATISTICS 1000;

ALTER TABLE public.city ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.city_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.idempotency_key (
    key text NOT NULL,
    request_hash text NOT NULL,
    response jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    collection text NOT NULL,
    CONSTRAINT idempotency_key_length CHECK (((char_length(key) >= 1) AND (char_length(key) <= 255)))
);

CREATE TABLE public.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.write_quota (
    writer text NOT NULL,
    window_start timestamp with time zone NOT NULL,
    writes bigint NOT NULL,
    quota bigint NOT NULL,
    CONSTRAINT write_quota_within_quota CHECK ((writes <= quota)),
    CONSTRAINT write_quota_writer_length CHECK (((char_length(writer) >= 1) AND (char_length(writer) <= 300)))
);

ALTER TABLE ONLY public.city
    ADD CONSTRAINT city_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.idempotency_key
    ADD CONSTRAINT idempotency_key_pkey PRIMARY KEY (collection, key);

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

ALTER TABLE ONLY public.write_quota
    ADD CONSTRAINT write_quota_pkey PRIMARY KEY (writer);

CREATE INDEX city_name_order ON public.city USING btree (lower(name), id);

CREATE UNIQUE INDEX city_name_state_key ON public.city USING btree (lower(name), lower(state));

CREATE INDEX city_name_trgm ON public.city USING gin (name_lower public.gin_trgm_ops);

CREATE INDEX city_state_name_order ON public.city USING btree (lower(state), lower(name), id);

CREATE INDEX city_state_order ON public.city USING btree (lower(state), id);

CREATE INDEX idempotency_key_expiry ON public.idempotency_key USING btree (expires_at);
