-- The country table, as a migration adding a resource would create it (README: Adding a
-- resource): id, the declared fields, created_at and updated_at; a unique index per declared
-- Unique, named as declared; an index (sort expression, id) per declared sort.
CREATE TABLE country (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL CONSTRAINT country_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    iso_code text NOT NULL CONSTRAINT country_iso_code_shape CHECK (iso_code ~ '^[A-Z]{2}$'),
    population bigint CONSTRAINT country_population_positive CHECK (population >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX country_name_key ON country (lower(name));
CREATE UNIQUE INDEX country_iso_code_key ON country (iso_code);

CREATE INDEX country_name_order ON country (lower(name), id);
CREATE INDEX country_iso_code_order ON country (iso_code, id);
