-- The region table, as a migration adding a resource would create it (README: Adding a
-- resource): id, the declared fields, created_at and updated_at; a unique index per declared
-- Unique, named as declared; an index (sort expression, id) per declared sort.
CREATE TABLE region (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL CONSTRAINT region_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    iso_code text NOT NULL CONSTRAINT region_iso_code_shape CHECK (iso_code ~ '^[A-Z]{2}$'),
    population bigint CONSTRAINT region_population_positive CHECK (population >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX region_name_key ON region (lower(name));
CREATE UNIQUE INDEX region_iso_code_key ON region (iso_code);

CREATE INDEX region_name_order ON region (lower(name), id);
CREATE INDEX region_iso_code_order ON region (iso_code, id);
-- Sort("population", nulls="last"): ascending order puts NULLs last, so PostgreSQL prints this
-- index back as (population, id); nulls="first" would be (population NULLS FIRST, id), which
-- tests/db/test_null_ordering.py declares and walks too.
CREATE INDEX region_population_order ON region (population, id);
CREATE INDEX region_population_nulls_first_order ON region (population NULLS FIRST, id);

-- district: a resource referring to region (a declared Reference, tests/support/resources/
-- district.py): the foreign key named as PostgreSQL names it, and the index it needs.
CREATE TABLE district (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL CONSTRAINT district_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    region_id bigint NOT NULL REFERENCES region (id) ON DELETE RESTRICT,
    population bigint NOT NULL DEFAULT 0 CONSTRAINT district_population_range
        CHECK (population >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX district_region_id ON district (region_id);
CREATE INDEX district_population_order ON district (population, id);
-- The range filter min_population under the other sorts: each sort's index with population
-- after it, so the bound is checked in the index (this one also serves sort=name alone).
CREATE INDEX district_name_order ON district (lower(name), id, population);
CREATE INDEX district_id_population ON district (id, population);
