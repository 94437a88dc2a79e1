"""How a q term becomes SQL: a term of several words is looked up by its rarest words first,
as PostgreSQL's own statistics tell, and still matches exactly as one substring."""

from __future__ import annotations

import psycopg2
import pytest

from cities.db import city_filters, store
from cities.db.city_filters import NameStats, name_stats, rarest_first, words
from cities.db.migrate import migrate
from cities.http.listing import ListQuery
from cities.resources.city import CITY
from tests.support.statements import logged_connection


def test_words_are_the_distinct_runs_of_three_or_more_letters_or_digits():
    assert words("Salt Lake  city, SALT-lake 42nd St. x_yz") == ["Salt", "Lake", "city", "42nd"]
    assert words("Zürich") == ["Zürich"]
    assert words("a b") == []


def test_a_word_share_counts_common_values_and_the_histogram_of_the_rest():
    stats = NameStats(
        common=["springfield", "salem"], freqs=[0.2, 0.1],
        histogram=["ashford", "ashland", "boston", "dover"],
    )  # fmt: skip
    assert stats.share("springfield") == pytest.approx(0.2)
    assert stats.share("ash") == pytest.approx(0.7 * 2 / 4)
    assert stats.share("s") == pytest.approx(0.2 + 0.1 + 0.7 * 3 / 4)
    assert stats.share("zzz") == 0
    assert NameStats([], [], []).share("any") == 0


def test_rarest_first_orders_words_by_share_and_breaks_ties_by_length():
    stats = NameStats([], [], ["lake city", "lake view", "salt lake", "fort lee"])
    assert rarest_first(["Lake", "Salt", "Fort"], stats) == ["Salt", "Fort", "Lake"]
    assert rarest_first(["Salt", "Zanesville", "Zoar"], stats) == ["Zanesville", "Zoar", "Salt"]


def test_name_stats_come_from_the_planners_statistics_and_are_kept_a_while(
    sql, database_url, monkeypatch
):
    monkeypatch.setattr(city_filters, "_name_stats", {})  # none kept from earlier tests
    sql("INSERT INTO city (name, state) SELECT CASE WHEN n % 4 = 0 THEN 'Oakhaven ' ELSE 'Elm ' "
        "END || n, 'S' FROM generate_series(1, 2000) AS n")
    sql("ANALYZE city")
    conn = psycopg2.connect(database_url)
    try:
        stats = name_stats(conn)
        assert stats.share("oakhaven") == pytest.approx(0.25, abs=0.05)
        assert stats.share("elm") == pytest.approx(0.75, abs=0.05)
        assert name_stats(conn) is stats  # read once, not on every search
        monkeypatch.setattr(city_filters, "NAME_STATS_MAX_AGE", 0.0)
        assert name_stats(conn) is not stats
    finally:
        conn.close()


def test_a_table_never_analyzed_has_no_statistics_and_ties_go_to_the_longer_word(
    empty_database_url,
):
    migrate(empty_database_url)
    conn = psycopg2.connect(empty_database_url)
    try:
        stats = name_stats(conn)
    finally:
        conn.close()
    assert (stats.common, stats.histogram) == ([], [])
    assert rarest_first(["Elm", "Oakhaven", "Ash"], stats) == ["Oakhaven", "Elm", "Ash"]



def list_with_plan(url: str, q: str, *setup: str) -> tuple[list[dict], str]:
    """City's list for `q` after the `setup` statements (and ANALYZE), with the plan of its
    last statement, as the server chose it."""
    conn, captured = logged_connection(url)
    try:
        with conn.cursor() as cur:
            for statement in (*setup, "VACUUM ANALYZE city"):
                cur.execute(statement)
        rows = store.list_page(conn, CITY, ListQuery(filters={"q": q}), 101)
        with conn.cursor() as cur:
            cur.execute("EXPLAIN " + captured[-1])
            plan = "\n".join(row[0] for row in cur.fetchall())
    finally:
        conn.close()
    return rows, plan


def test_with_pg_trgm_a_full_name_is_looked_up_by_its_rare_word_and_checked_whole(trgm_url):
    # The first word is in a third of the names: as one condition, the index would read its
    # long posting lists; word by word, the rare second word leads.
    rows, plan = list_with_plan(
        trgm_url, "ASHBROOK quixotic",
        "TRUNCATE city",
        "INSERT INTO city (name, state) SELECT CASE n % 3 WHEN 0 THEN 'Ashbrook' "
        "ELSE 'Elmwood' END || ' ' || md5(n::text), 'S' FROM generate_series(1, 6000) AS n",
        "INSERT INTO city (name, state) VALUES ('Ashbrook Quixotic', 'S'), "
        "('Quixotic Ashbrook', 'S'), ('Ashbrook  Quixotic', 'S')",
    )
    assert [row["name"] for row in rows] == ["Ashbrook Quixotic"]
    index_cond = next(line for line in plan.splitlines() if "Index Cond" in line)
    assert index_cond.index("quixotic") < index_cond.index("ashbrook"), plan
    assert "ashbrook quixotic" not in index_cond, plan
    assert "Filter" in plan and "ashbrook quixotic" in plan, plan
