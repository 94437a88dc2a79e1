-- The city table. Names and states are stored trimmed (the API trims them); the checks hold the
-- length rule even for rows written by hand.
CREATE TABLE city (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL CONSTRAINT city_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    state text NOT NULL CONSTRAINT city_state_length CHECK (char_length(state) BETWEEN 1 AND 100),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One city of a name per state, whatever the case.
CREATE UNIQUE INDEX city_name_state_key ON city (lower(name), lower(state));

-- Keyset pagination: each list ordering walks one of these (forwards or backwards), and the
-- state filter narrows to a range of the state-led ones. The primary key serves sort=id.
CREATE INDEX city_name_order ON city (lower(name), id);
CREATE INDEX city_state_order ON city (lower(state), id);
CREATE INDEX city_state_name_order ON city (lower(state), lower(name), id);
