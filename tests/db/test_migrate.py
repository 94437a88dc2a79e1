"""Schema migrations: applied once each, safely re-run, serialized, and immutable once applied."""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
import pytest

from cities.db.migrate import (
    LOCK_ID,
    MIGRATIONS_DIR,
    DeadlineReached,
    MigrationError,
    latest_version,
    load_migrations,
    migrate,
)
from tests.conftest import run_sql

SHIPPED = [m.name for m in load_migrations()]


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    """A copy of the shipped migrations that a test may extend or edit."""
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, target)
    return target


def test_fresh_database_gets_every_migration(empty_database_url):
    result = migrate(empty_database_url)
    assert result == {"applied": SHIPPED, "already_applied": 0, "version": latest_version()}
    rows = run_sql(empty_database_url,
                   "SELECT version, name, length(checksum) FROM schema_migrations")
    assert [(v, n) for v, n, _ in rows] == [(m.version, m.name) for m in load_migrations()]
    assert all(length == 64 for *_, length in rows)
    columns = run_sql(
        empty_database_url,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'city' ORDER BY ordinal_position",
    )
    assert {
        ("id", "bigint"), ("name", "text"), ("state", "text"),
        ("created_at", "timestamp with time zone"), ("updated_at", "timestamp with time zone"),
        ("name_lower", "text"),
    } <= set(columns)  # a field added later (docs/extending.md: Adding a field) only adds a column


def test_running_again_applies_nothing(empty_database_url):
    migrate(empty_database_url)
    again = migrate(empty_database_url)
    assert again == {"applied": [], "already_applied": len(SHIPPED), "version": latest_version()}


def test_concurrent_runs_both_succeed_and_apply_each_file_once(empty_database_url):
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: migrate(empty_database_url), range(4)))
    applied = [name for result in results for name in result["applied"]]
    assert sorted(applied) == sorted(SHIPPED)
    count = run_sql(empty_database_url, "SELECT count(*) FROM schema_migrations")
    assert count == [(len(SHIPPED),)]


def test_a_new_file_is_applied_on_the_next_run(empty_database_url, migrations_dir):
    migrate(empty_database_url, directory=migrations_dir)
    (migrations_dir / "0900_example_table.sql").write_text(
        "CREATE TABLE example_table (id int);\n"
    )
    result = migrate(empty_database_url, directory=migrations_dir)
    assert result["applied"] == ["0900_example_table.sql"]
    assert result["version"] == 900


def test_a_changed_applied_file_is_refused(empty_database_url, migrations_dir):
    migrate(empty_database_url, directory=migrations_dir)
    first = sorted(migrations_dir.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
    (migrations_dir / "0900_more.sql").write_text("CREATE TABLE more (id int);\n")

    with pytest.raises(MigrationError, match=f"{first.name} was changed after it was applied"):
        migrate(empty_database_url, directory=migrations_dir)
    assert run_sql(empty_database_url, "SELECT to_regclass('more') IS NULL") == [(True,)]


def test_line_ending_changes_do_not_count_as_changes(empty_database_url, migrations_dir):
    migrate(empty_database_url, directory=migrations_dir)
    for path in migrations_dir.glob("*.sql"):
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert migrate(empty_database_url, directory=migrations_dir)["applied"] == []


def test_a_failing_file_is_rolled_back_whole_and_later_files_wait(empty_database_url,
                                                                   migrations_dir):
    (migrations_dir / "0900_half.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n"
    )
    (migrations_dir / "0901_after.sql").write_text("CREATE TABLE after_half (id int);\n")

    with pytest.raises(MigrationError, match=r"0900_half\.sql failed and was rolled back"):
        migrate(empty_database_url, directory=migrations_dir)

    assert run_sql(empty_database_url, "SELECT to_regclass('half_done') IS NULL, "
                   "to_regclass('after_half') IS NULL, to_regclass('city') IS NOT NULL") == [
        (True, True, True)
    ]
    assert run_sql(empty_database_url, "SELECT max(version) FROM schema_migrations") == [
        (latest_version(),)
    ]


@pytest.mark.parametrize("bad_name", ["1_city.sql", "0002-city.sql", "0002_City.sql"])
def test_misnamed_files_are_refused(migrations_dir, bad_name):
    (migrations_dir / bad_name).write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_description\.sql"):
        load_migrations(migrations_dir)


def test_duplicate_versions_are_refused(migrations_dir):
    (migrations_dir / "0001_again.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="share a version"):
        load_migrations(migrations_dir)


def test_the_lock_is_released_after_a_run(empty_database_url):
    migrate(empty_database_url)
    locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
    assert run_sql(empty_database_url, locks) == [(0,)]


def test_a_lock_holder_delays_a_run_only_while_its_transaction_lasts(empty_database_url):
    """The lock is transaction-level: a session that stays open afterwards holds nothing."""
    from cities.db.migrate import LOCK_ID

    holder = psycopg2.connect(empty_database_url)
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
    done = threading.Event()
    result = {}
    runner = threading.Thread(target=lambda: (result.update(migrate(empty_database_url)),
                                              done.set()))
    runner.start()
    assert not done.wait(0.5)  # waits for the holder's transaction
    holder.rollback()
    runner.join(10)
    assert result["applied"] == SHIPPED
    holder.close()


# --- the deadline (the migrate function's, before Lambda kills it) ------------------------

# Time a test run has before its deadline; generous, since only the truth after it is checked.
RUN_S = 2.0


def applied_files(url: str) -> list[str]:
    if run_sql(url, "SELECT to_regclass('schema_migrations') IS NULL") == [(True,)]:
        return []
    return [name for (name,) in run_sql(url, "SELECT name FROM schema_migrations ORDER BY 1")]


def only(directory: Path, name: str, sql: str) -> Path:
    """`directory` holding just one migration file."""
    for path in directory.glob("*.sql"):
        path.unlink()
    (directory / name).write_text(sql)
    return directory


def test_a_run_whose_deadline_has_passed_starts_nothing(empty_database_url):
    with pytest.raises(DeadlineReached, match=r"did not start.*applied nothing"):
        migrate(empty_database_url, deadline=time.monotonic())
    assert run_sql(empty_database_url, "SELECT to_regclass('schema_migrations')") == [(None,)]


def test_a_run_waiting_for_another_runs_lock_at_its_deadline_stops_with_nothing_applied(
    empty_database_url,
):
    holder = psycopg2.connect(empty_database_url)
    with holder.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
    safety = threading.Timer(RUN_S * 10, holder.rollback)  # a run that never stops ends too
    safety.start()
    try:
        with pytest.raises(DeadlineReached, match="waiting for another run of the migrations"):
            migrate(empty_database_url, deadline=time.monotonic() + RUN_S)
    finally:
        safety.cancel()
        holder.rollback()
        holder.close()
    assert applied_files(empty_database_url) == []


def test_a_migration_that_swallows_the_cancel_is_still_rolled_back(empty_database_url,
                                                                    migrations_dir):
    """Past the deadline no COMMIT goes out, even when the statement outlived the cancel."""
    only(migrations_dir, "0900_stubborn.sql", f"""
        DO $$ BEGIN PERFORM pg_sleep({RUN_S * 10});
        EXCEPTION WHEN query_canceled THEN NULL; END $$;
        CREATE TABLE stubborn (id int);
    """)
    with pytest.raises(DeadlineReached, match="applied nothing"):
        migrate(empty_database_url, directory=migrations_dir,
                deadline=time.monotonic() + RUN_S)
    assert applied_files(empty_database_url) == []
    assert run_sql(empty_database_url, "SELECT to_regclass('stubborn')") == [(None,)]


def test_a_commit_still_running_at_the_deadline_is_cancelled_and_rolled_back(
    empty_database_url, migrations_dir
):
    """A deferred trigger makes the COMMIT itself slow: the cancel reaches it, and the ledger
    (read back, since a COMMIT that raised may still have committed) confirms the rollback."""
    only(migrations_dir, "0900_slow_commit.sql", f"""
        CREATE TABLE slow_commit (id int);
        CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql
            AS $$ BEGIN PERFORM pg_sleep({RUN_S * 10}); RETURN NULL; END $$;
        CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON slow_commit
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();
        INSERT INTO slow_commit VALUES (1);
    """)
    started = time.monotonic()
    with pytest.raises(DeadlineReached, match="applied nothing"):
        migrate(empty_database_url, directory=migrations_dir, deadline=started + RUN_S)
    assert time.monotonic() - started < RUN_S * 10  # not after the trigger's sleep
    assert applied_files(empty_database_url) == []
    assert run_sql(empty_database_url, "SELECT to_regclass('slow_commit')") == [(None,)]


def test_driver_errors_become_migration_errors(empty_database_url):
    with pytest.raises(MigrationError, match="cannot connect to the database"):
        migrate("postgresql://nobody@127.0.0.1:9/nowhere", connect_timeout=1)
    migrate(empty_database_url)
    run_sql(empty_database_url, "ALTER TABLE schema_migrations RENAME COLUMN checksum TO sum")
    with pytest.raises(MigrationError, match="migrations failed: UndefinedColumn"):
        migrate(empty_database_url)


@pytest.mark.parametrize(
    ("settings", "warned"),
    [
        ({"DATABASE_URL": "postgresql://u@ep-cool-1-pooler.eu-central-1.aws.neon.tech/db"}, True),
        ({"DATABASE_URL": "host=ep-cool-1-pooler.eu-central-1.aws.neon.tech dbname=db"}, True),
        ({"DATABASE_URL": "postgresql://u@ep-cool-1.eu-central-1.aws.neon.tech/db"}, False),
        ({"DATABASE_URL": "postgresql://u@ep-cool-1-pooler.neon.tech/db",
          "MIGRATIONS_DATABASE_URL": "postgresql://u@ep-cool-1.neon.tech/db"}, False),
    ],
)
def test_a_pooler_url_given_to_migrations_is_warned_about(settings, warned, caplog):
    from cities.ops import config

    url = config.migrations_url(settings)
    assert url == settings.get("MIGRATIONS_DATABASE_URL", settings["DATABASE_URL"])
    assert ("set MIGRATIONS_DATABASE_URL to the direct" in caplog.text) is warned


def test_handler_migrate_prefers_migrations_database_url(handler_module, empty_database_url,
                                                         monkeypatch):
    monkeypatch.setitem(handler_module.app.config, "DATABASE_URL", "postgresql://nobody@127.0.0.1:9/x")
    monkeypatch.setitem(handler_module.app.config, "MIGRATIONS_DATABASE_URL", empty_database_url)
    result = handler_module.migrate({}, None)
    assert result["applied"] == SHIPPED
    assert handler_module.migrate({}, None)["applied"] == []


def test_handler_migrate_without_any_url_fails_clearly(handler_module, monkeypatch):
    monkeypatch.setitem(handler_module.app.config, "DATABASE_URL", None)
    monkeypatch.setitem(handler_module.app.config, "MIGRATIONS_DATABASE_URL", None)
    with pytest.raises(RuntimeError, match="MIGRATIONS_DATABASE_URL or DATABASE_URL"):
        handler_module.migrate({}, None)


# --- pg_trgm (the trgm_url fixture: conftest.py) ---------------------------------------------


def test_with_pg_trgm_q_searches_use_a_trigram_index_on_the_stored_lowered_name(trgm_url):
    (definition,) = run_sql(trgm_url, "SELECT indexdef FROM pg_indexes WHERE indexname = "
                                      "'city_name_trgm'")[0]
    assert "USING gin (name_lower gin_trgm_ops)" in definition
    conn = psycopg2.connect(trgm_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("TRUNCATE city")
            cur.execute("INSERT INTO city (name, state) SELECT 'Town ' || n, 'S' "
                        "FROM generate_series(1, 5000) AS n")
            cur.execute("INSERT INTO city (name, state) VALUES ('Quixotic Falls', 'S')")
            cur.execute("VACUUM ANALYZE city")  # as autovacuum would: flushes GIN's pending list
            cur.execute("EXPLAIN SELECT id FROM city WHERE name_lower LIKE '%xotic fa%' "
                        "ORDER BY id LIMIT 101")
            plan = "\n".join(row[0] for row in cur.fetchall())
            cur.execute("SELECT attstattarget FROM pg_attribute "
                        "WHERE attrelid = 'city'::regclass AND attname = 'name_lower'")
            statistics_target = cur.fetchone()[0]
    finally:
        conn.close()
    assert "Bitmap Index Scan on city_name_trgm" in plan
    assert statistics_target == 1000


def test_0005_normalizes_existing_rows_as_the_api_would_and_reports_the_rest(
    empty_database_url, migrations_dir, caplog
):
    """Rows written before the text rule: each becomes clean_text's stored form, unless that
    is invalid or would duplicate another city, which are left as they are and named."""
    import logging

    from cities.resources.validation import clean_text

    for path in migrations_dir.glob("*.sql"):
        if int(path.name[:4]) >= 5:
            path.unlink()
    migrate(empty_database_url, directory=migrations_dir)  # the schema before 0005
    rows = [
        ("Zu\u0308rich", "ZH"),  # 1: NFD -> NFC
        ("\uff22\uff45\uff52\uff4e", "BE"),  # 2: full-width -> Bern
        ("Gen\u00e8ve\u200b", "\ufeffGE"),  # 3: invisible characters at the ends
        ("\u00a0Basel\u3000", "BS "),  # 4: other spaces at the ends
        ("Z\u00fcrich", "zh"),  # 5: already normalized: 1 duplicates it once normalized
        ("Zu\u0308rich\u200b", "ZH"),  # 6: and so does 6; both are kept and reported
        ("\u200b", "X"),  # 7: empty once trimmed, kept
        ("\u202egnirpS", "X"),  # 8: a bidi override, kept
        ("Lausanne", "VD"),  # 9: nothing to do
        ("\u0645\u06cc\u200c\u0634\u0648\u062f", "\u200dTehran"),  # 10: ZWNJ stays inside
    ]
    for name, state in rows:
        run_sql(empty_database_url, "INSERT INTO city (name, state) VALUES (%s, %s)",
                (name, state))
    # 5 could be inserted beside 1: the unique index saw NFD and NFC as different names.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cities"):
        result = migrate(empty_database_url)
    assert result["applied"][0] == "0005_normalize_text.sql"

    stored = dict(((i, (n, s)) for i, n, s in run_sql(
        empty_database_url, "SELECT id, name, state FROM city ORDER BY id")))
    reported = {1, 6, 7, 8}
    for city_id, (name, state) in enumerate(rows, start=1):
        if city_id in reported:
            assert stored[city_id] == (name, state), city_id
            continue
        want = (clean_text(name)[0], clean_text(state)[0])
        assert stored[city_id] == want, city_id
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for city_id in reported:
        assert any(f"city {city_id}:" in m for m in warnings), (city_id, warnings)
    assert not any(f"city {city_id}:" in m for m in warnings for city_id in (2, 3, 4, 9, 10))
    assert all(m.startswith("0005_normalize_text.sql: WARNING:") for m in warnings), warnings


def test_0005_trims_and_refuses_exactly_the_characters_the_api_does(empty_database_url):
    """The migration's character classes against clean_text, character by character."""
    import re
    import unicodedata

    from cities.resources.validation import clean_text

    migrate(empty_database_url)
    sql = (MIGRATIONS_DIR / "0005_normalize_text.sql").read_text()
    trimmed, refused = re.findall(r"CONSTANT text := '([^']*)';", sql)
    characters = [chr(c) for c in range(1, 0x110000)
                  if unicodedata.category(chr(c)) in ("Cc", "Cf", "Zs", "Zl", "Zp")]
    samples = [v for c in characters for v in (f"a{c}", f"{c}a", f"a{c}b", c)]
    rows = run_sql(
        empty_database_url,
        "SELECT regexp_replace(normalize(s, NFKC), %s, '', 'g'), "
        "regexp_replace(normalize(s, NFKC), %s, '', 'g') ~ %s FROM unnest(%s) AS s",
        (trimmed, trimmed, refused, samples),
    )
    for sample, (stored, is_refused) in zip(samples, rows, strict=True):
        want, reason = clean_text(sample)
        if reason:
            assert stored == "" or is_refused, repr(sample)
        else:
            assert (stored, is_refused) == (want, False), repr(sample)
