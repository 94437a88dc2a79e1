-- Names and states as the API now stores them (cities/validation.py, clean_text): Unicode NFKC,
-- with whitespace and invisible format characters trimmed from both ends. Rows written before
-- could hold look-alikes of one another (decomposed accents, full-width letters, a trailing
-- zero-width space), which the unique index and `q` told apart.
--
-- A row is rewritten only when its normalized form is valid and unique in its state. Two rows
-- that become the same city, or a row that the rule refuses once normalized (empty, a bidi
-- control, an invisible character inside), are left as they are and reported, each in a
-- WARNING that names the city's id (`make migrate` and the migrate function log them): merge,
-- rename or delete them through the API. Only rows that need it are rewritten; the others are
-- only read (1M rows of plain names: 2.4 s on the benchmark machine).
--
-- The character classes are cities/validation.py's _TRIMMED and _REFUSED, in PostgreSQL's
-- regex syntax (tests/test_migrate.py checks the migration against clean_text).
DO $migration$
DECLARE
    trimmed CONSTANT text := '^[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\t\n\u000b\u000c\r\u001c-\u001f\u0085\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b\u200e\u200f\u2060-\u2064\u206a-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f\u200c\u200d]+|[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\t\n\u000b\u000c\r\u001c-\u001f\u0085\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b\u200e\u200f\u2060-\u2064\u206a-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f\u200c\u200d]+$';
    refused CONSTANT text := '[\u0001-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b\u200e\u200f\u2060-\u2064\u206a-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]';
    found record;
    new_name text;
    new_state text;
BEGIN
    IF current_setting('server_encoding') <> 'UTF8' THEN
        RAISE WARNING 'the database encoding is %, not UTF8: names and states were not normalized',
            current_setting('server_encoding');
        RETURN;
    END IF;
    FOR found IN
        SELECT id, name, state FROM city
        WHERE NOT (name IS NFKC NORMALIZED AND state IS NFKC NORMALIZED)
           OR name ~ trimmed OR state ~ trimmed OR name ~ refused OR state ~ refused
        ORDER BY id
    LOOP
        new_name := regexp_replace(normalize(found.name, NFKC), trimmed, '', 'g');
        new_state := regexp_replace(normalize(found.state, NFKC), trimmed, '', 'g');
        IF new_name = '' OR new_state = '' OR new_name ~ refused OR new_state ~ refused
           OR char_length(new_name) > 100 OR char_length(new_state) > 100 THEN
            RAISE WARNING 'city %: its name or state is not valid text once normalized; left as it is (rename it)',
                found.id;
            CONTINUE;
        END IF;
        BEGIN
            UPDATE city
            SET name = new_name, state = new_state,
                updated_at = greatest(now(), updated_at + interval '1 microsecond')
            WHERE id = found.id AND (name, state) IS DISTINCT FROM (new_name, new_state);
        EXCEPTION WHEN unique_violation THEN
            RAISE WARNING 'city %: once normalized it duplicates another city in its state; left as it is (merge or delete one of them)',
                found.id;
        END;
    END LOOP;
END
$migration$;
