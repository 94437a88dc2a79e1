"""The SQL special to the `city` table: its list filters (`state`, and the word-by-word `q`).

The shared statements (get, list, create, update, delete) come from city's declaration
(cities/resources/city.py) through cities/db/store.py; `list_filter` is the hook that adds
these filters.
Values always travel as query parameters; the fragments below are fixed.
"""

from __future__ import annotations

import re
import time
from typing import Any

from psycopg2.extensions import connection

from cities.http.listing import ListQuery

# A state filter puts lower(state) in front of the order, so that a page is a range of a
# state-led index, (lower(state), id) or (lower(state), lower(name), id), from the cursor on.
# The state is compared with `= ANY (ARRAY[...])`, not `=`: with a plain equality PostgreSQL drops
# lower(state) from the order (it is constant) and may instead walk the primary key, filtering
# out every other state; it takes that for as cheap, as it cannot tell that a state's rows lie in
# id order. With ANY it never did (docs/benchmarks.md, Design measurements).
STATE_FILTER = "lower(state) = ANY (ARRAY[lower(%s)])"
STATE_ORDER = ("lower(state)",)

# `q`: a substring of the stored lowercased name (migration 0004), given through escape_like.
Q_FILTER = "name_lower LIKE '%%' || lower(%s) || '%%'"

# A term of several words is looked up word by word (see _q_conditions). The term itself is then
# checked with the same LIKE under COLLATE "C": LIKE gives the same answer in any deterministic
# collation, but an index serves only conditions in its own collation, so this one is checked on
# the rows the words' conditions found instead of being looked up, and the planner still
# estimates it from name_lower's statistics.
Q_EXACT_FILTER = "name_lower COLLATE \"C\" LIKE '%%' || lower(%s) || '%%'"

# The words pg_trgm indexes are runs of letters and digits; one shorter than 3 has no trigram
# of its own to look up.
_WORD = re.compile(r"[^\W_]{3,}")

# How common a value of name_lower is, as the planner knows it: the most common values with their
# frequencies, and the histogram that spreads the rest (migration 0004 asks for 1,000 values).
NAME_STATS = """
SELECT coalesce(most_common_vals::text::text[], '{}'), coalesce(most_common_freqs, '{}'),
       coalesce(histogram_bounds::text::text[], '{}')
FROM pg_stats
WHERE schemaname = current_schema() AND tablename = 'city' AND attname = 'name_lower'
"""
NAME_STATS_MAX_AGE = 600.0  # seconds; the statistics change only when the table is analyzed

def escape_like(text: str) -> str:
    """`%`, `_` and `\\` in a search term match themselves (backslash is LIKE's escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class NameStats:
    """The share of names containing a word, estimated from name_lower's statistics."""

    def __init__(self, common: list[str], freqs: list[float], histogram: list[str]) -> None:
        self.common = list(zip(common, freqs, strict=True))
        self.histogram = histogram
        self.rest = 1.0 - sum(freqs)

    def share(self, word: str) -> float:
        common = sum(freq for value, freq in self.common if word in value)
        if not self.histogram:
            return common
        hits = sum(word in value for value in self.histogram)
        return common + self.rest * hits / len(self.histogram)


# Per database (its DSN, without the password): (read at, statistics).
_name_stats: dict[str, tuple[float, NameStats]] = {}


def name_stats(conn: connection) -> NameStats:
    """name_lower's statistics, read at most once per NAME_STATS_MAX_AGE by this process.

    Stale ones cost time, never a wrong answer: they only choose which words are looked up.
    """
    now = time.monotonic()
    cached = _name_stats.get(conn.dsn)
    if cached is not None and now - cached[0] < NAME_STATS_MAX_AGE:
        return cached[1]
    with conn.cursor() as cur:
        cur.execute(NAME_STATS)
        row = cur.fetchone()
    stats = NameStats(*row) if row else NameStats([], [], [])
    _name_stats[conn.dsn] = (now, stats)
    return stats


def words(term: str) -> list[str]:
    """The term's distinct words of 3+ letters or digits, in order, each as first written.

    They keep their case: PostgreSQL lowers each as it lowers the term, so each is a part of it.
    """
    found: dict[str, str] = {}
    for word in _WORD.findall(term):
        found.setdefault(word.lower(), word)
    return list(found.values())


def rarest_first(candidates: list[str], stats: NameStats) -> list[str]:
    """The words by their share of names, rarest first; a tie goes to the longer word."""
    return sorted(candidates, key=lambda word: (stats.share(word.lower()), -len(word)))


def _q_conditions(conn: connection, term: str) -> tuple[list[str], list[str]]:
    """The conditions (and their parameters) for names containing `term`, case-insensitively.

    A trigram index (migration 0003) holds one posting list per trigram, and for one LIKE
    condition PostgreSQL's GIN index reads every list of the term's trigrams as far as the term's
    rarest one reaches: a full name ("ashbrook babapa") whose first word is in 1% of the names
    reads their long lists whole. Given one condition per word, GIN walks the first condition's
    matches and consults the next only at those, so the two rarest words go in, rarest first, as
    name_lower's statistics tell (pages and times: docs/benchmarks.md, Findings), and the term
    is checked on the rows they find. The second word guards against a first one
    that is common after all; more would each cost their own index descents. A one-word term
    stays one condition.
    """
    found = words(term)
    if len(found) < 2:
        return [Q_FILTER], [escape_like(term)]
    rarest = rarest_first(found, name_stats(conn))[:2]
    return [Q_FILTER] * len(rarest) + [Q_EXACT_FILTER], [*rarest, escape_like(term)]


def list_filter(conn: connection, query: ListQuery) -> tuple[list[str], list[Any], tuple[str, ...]]:
    """city's list_filter hook: the conditions for `state` and `q`, their parameters, and the
    state-led order a state filter puts in front of the sort."""
    conditions: list[str] = []
    params: list[Any] = []
    prefix: tuple[str, ...] = ()
    state = query.filters.get("state")
    if state is not None:
        conditions.append(STATE_FILTER)
        params.append(state)
        prefix = STATE_ORDER
    q = query.filters.get("q")
    if q is not None:
        q_conditions, q_params = _q_conditions(conn, q)
        conditions.extend(q_conditions)
        params.extend(q_params)
    return conditions, params, prefix
