-- `q` (a substring of the name) cannot use a b-tree: without help every q search reads the table.
-- A trigram index on lower(name) lets PostgreSQL find rare terms without a sequential scan, when
-- the server ships the pg_trgm extension (most hosted PostgreSQL do; the embedded local server
-- does not). Where pg_trgm is missing, or this role may not create it, this migration only leaves
-- a notice: the API works the same, q searches just scan.
DO $migration$
DECLARE
    trgm_schema text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        RAISE NOTICE 'pg_trgm is not available on this server: q searches will scan the table';
        RETURN;
    END IF;
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'pg_trgm is available but this role may not create it: q searches will scan';
        RETURN;
    END;
    -- The extension may live in another schema (some hosts keep extensions apart).
    SELECT n.nspname INTO trgm_schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_trgm';
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS city_name_trgm ON city USING gin (lower(name) %I.gin_trgm_ops)',
        trgm_schema
    );
END
$migration$;
