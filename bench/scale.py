"""Scale: list pages (filters, sorts, a deep cursor) at growing table sizes, with their plans.

Every size is loaded first and all pages are timed in one interleaved run, so the ratio between
sizes is honest on a shared machine; the plans say why a page stays flat (or does not).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.common import expect, interleaved, log, target

HEADS = ["Ash", "Birch", "Cedar", "Elm", "Fair", "Green", "High", "Maple", "Oak", "Pine"]
TAILS = ["brook", "dale", "field", "ford", "haven", "hill", "mont", "port", "ton", "wood"]
STATES = [
    "Alabama", "Alaska", "Arizona", "Arkansas", "California", "Colorado", "Connecticut",
    "Delaware", "Florida", "Georgia", "Hawaii", "Idaho", "Illinois", "Indiana", "Iowa", "Kansas",
    "Kentucky", "Louisiana", "Maine", "Maryland", "Massachusetts", "Michigan", "Minnesota",
    "Mississippi", "Missouri", "Montana", "Nebraska", "Nevada", "New Hampshire", "New Jersey",
    "New Mexico", "New York", "North Carolina", "North Dakota", "Ohio", "Oklahoma", "Oregon",
    "Pennsylvania", "Rhode Island", "South Carolina", "South Dakota", "Tennessee", "Texas", "Utah",
    "Vermont", "Virginia", "Washington", "West Virginia", "Wisconsin", "Wyoming",
]  # fmt: skip
# Names are a word (one in 100 is Oakhaven: the 1% term) and a made-up second word spelling the
# row's number in syllables ("Oakhaven Bakotu"), so every name is unique and, like a real place
# name, made of letters. (Digits would be a worst case for the trigram index: with only 1,000
# digit trigrams, every trigram of a number is shared by a large share of the rows.)
SYLLABLES = [c + v for c in "bdfghjklmnprstvwxyz" + "c" for v in "aeiou"]  # 100 syllables
LOAD_SQL = """
INSERT INTO city (name, state)
SELECT (%(words)s::text[])[1 + ((i * 7919) %% 100)::int] || ' ' || initcap(
           (%(syllables)s::text[])[1 + (i %% 100)::int]
           || (%(syllables)s::text[])[1 + (i / 100 %% 100)::int]
           || (%(syllables)s::text[])[1 + (i / 10000 %% 100)::int]),
       (%(states)s::text[])[1 + ((i * 31 + i / 50) %% 50)::int]
FROM generate_series(1::bigint, %(rows)s) AS i
"""


def load(url: str, rows: int) -> float:
    """Fill the table with `rows` unique names in one INSERT, then VACUUM ANALYZE; seconds taken."""
    import psycopg2

    if rows > len(SYLLABLES) ** 3:
        raise SystemExit(f"the bench names spell at most {len(SYLLABLES) ** 3:,} rows uniquely")
    words = [h + t for h in HEADS for t in TAILS]
    start = time.perf_counter()
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(
            LOAD_SQL, {"words": words, "syllables": SYLLABLES, "states": STATES, "rows": rows}
        )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE city")
    conn.close()
    return time.perf_counter() - start


def _conditions(params: dict[str, str]) -> tuple[str, list[Any]]:
    """The API's own filters (city_filters), to count matches and find the deep page's row."""
    from cities.db.city_filters import Q_FILTER, STATE_FILTER, escape_like

    conds, args = ["true"], []
    if "state" in params:
        conds.append(STATE_FILTER)
        args.append(params["state"])
    if "q" in params:
        conds.append(Q_FILTER)
        args.append(escape_like(params["q"]))
    return " AND ".join(conds), args


PAGE_SIZE = 100  # the API's default limit, used by every scale page


def deep_cursor(conn: Any, params: dict[str, str]) -> tuple[str | None, int]:
    """The cursor the API would hand out after the row at 90% of the matches, and the count.

    When fewer than a full page would follow that row (small tables), the cursor moves back so a
    full page does: a 20-row page at 10k rows is no fair match for a 100-row page at 1M.
    """
    from cities.http.listing import ListQuery, cursor_after
    from cities.resources.city import CITY

    where, args = _conditions(params)
    sort = params.get("sort", "id")
    order = "lower(name), id" if sort == "name" else "id"
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM city WHERE {where}", args)
        count = cur.fetchone()[0]
        if count < 20:
            return None, count
        cur.execute(
            f"SELECT name, id FROM city WHERE {where} ORDER BY {order} OFFSET %s LIMIT 1",
            [*args, max(0, min(int(count * 0.9), count - PAGE_SIZE - 1))],
        )
        name, city_id = cur.fetchone()
    filters = {k: params[k] for k in ("state", "q") if k in params}
    query = ListQuery(sort=sort, filters=filters)
    return cursor_after(CITY, query, {"name": name, "id": city_id}), count


def explain(url: str, params: dict[str, str], *, no_bitmap: bool = False) -> dict[str, Any]:
    """The plan of the exact SQL the API runs for these parameters (captured, not rebuilt).

    `no_bitmap` plans it as a server without the trigram index would (no bitmap scans).
    """
    import psycopg2
    from psycopg2.extras import LoggingConnection
    from werkzeug.datastructures import MultiDict

    from cities.db import store
    from cities.http.listing import parse_list_query
    from cities.resources.city import CITY

    class Capture(list):
        def write(self, text: str) -> None:
            self.append(text)

    captured = Capture()
    conn = psycopg2.connect(url, connection_factory=LoggingConnection)
    conn.initialize(captured)
    try:
        query = parse_list_query(CITY, MultiDict(params))
        store.list_page(conn, CITY, query, query.limit + 1)
    finally:
        conn.close()
    sql = captured[-1].decode() if isinstance(captured[-1], bytes) else captured[-1]
    return explain_sql(url, sql, no_bitmap=no_bitmap)


def explain_sql(
    url: str, sql: str, params: tuple[Any, ...] | None = None, *, no_bitmap: bool = False
) -> dict[str, Any]:
    """`EXPLAIN ANALYZE` of one statement, cut to what the report reads: nodes, time, pages."""
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            if no_bitmap:
                cur.execute("SET enable_bitmapscan = off")
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
            plan = cur.fetchone()[0][0]
    finally:
        conn.close()
    nodes: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        label = node["Node Type"]
        if "Index Name" in node:
            label += f" using {node['Index Name']}"
        elif "Relation Name" in node:
            label += f" on {node['Relation Name']}"
        nodes.append(label)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    return {
        "nodes": nodes,
        "seq_scan": any(n.startswith("Seq Scan") for n in nodes),
        "execution_ms": plan["Execution Time"],
        "pages_read": plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"],
    }


def one_condition_probe(url: str, term: str) -> dict[str, Any]:
    """The term's page as one LIKE condition: how q searched before it went word by word."""
    from cities.db.city_filters import Q_FILTER, escape_like
    from cities.resources.city import CITY

    sql = f"SELECT {CITY.columns} FROM city WHERE {Q_FILTER} ORDER BY id LIMIT %s"
    return {"term": term, **explain_sql(url, sql, (escape_like(term), PAGE_SIZE + 1))}


SCALE_QUERIES = {
    "default (sort=id)": {},
    "state=Texas": {"state": "Texas"},
    "sort=name": {"sort": "name"},
    "q=oakhaven (1% of rows)": {"q": "oakhaven"},
}


def bench_scale(cluster: Any, row_counts: list[int], repeats: int) -> dict[str, Any]:
    """Every page at every table size, `repeats` interleaved runs; plans and size ratios."""
    import psycopg2

    from cities import create_app
    from cities.db.connection import kept_connection
    from cities.db.migrate import migrate
    from cities.http.lambda_entry import serve
    from tests.support.lambda_events import http_api_event

    # Load every size first, then time all their pages in one interleaved run: a ratio between
    # sizes is only honest when background load falls on both alike.
    out: dict[str, Any] = {"sizes": {}}
    setups: dict[int, dict[str, Any]] = {}
    for rows in row_counts:
        url = cluster.create_database(f"cities_scale_{rows}")
        migrate(url)
        log(f"scale: loading {rows:,} rows")
        load_seconds = load(url, rows)
        app = create_app({"DATABASE_URL": url, "DB_CONNECTION_REUSE": True})
        app_per_invocation = create_app({"DATABASE_URL": url})
        conn = psycopg2.connect(url)
        queries = dict(SCALE_QUERIES)
        mid = rows // 2
        with conn.cursor() as cur:
            cur.execute("SELECT name FROM city WHERE id = %s", (mid,))
            rare = cur.fetchone()[0]
        queries["q=<one name> (1 row)"] = {"q": rare.lower()}
        pages: dict[str, dict[str, str]] = {}
        counts: dict[str, int] = {}
        for label, params in queries.items():
            pages[f"{label}, first page"] = dict(params)
            cursor, counts[label] = deep_cursor(conn, params)
            if cursor is not None:
                pages[f"{label}, deep page (90%)"] = {**params, "cursor": cursor}
        conn.rollback()
        conn.close()
        setups[rows] = {
            "url": url, "app": app, "app_per_invocation": app_per_invocation, "pages": pages,
            "counts": counts, "load": load_seconds,
        }

    def call(event: dict[str, Any], app: Any) -> Callable[[int], Any]:
        return lambda _r: expect(serve(app, event, None), 200)

    # Each page twice: with reuse on, the figure is the query and the app alone (the strict view
    # of how a page scales); with a connection per invocation (the default), it is what a caller
    # of the default deployment waits, connect included.
    modes = {"reuse": "app", "per_invocation": "app_per_invocation"}
    contenders = {
        (rows, name, mode): call(http_api_event("GET", "/cities", query=params), setup[app_key])
        for rows, setup in setups.items()
        for name, params in setup["pages"].items()
        for mode, app_key in modes.items()
    }
    log(f"scale: {len(contenders)} pages x {repeats} runs, all sizes interleaved")
    timings = interleaved(contenders, repeats)

    for rows, setup in setups.items():
        kept_connection(setup["app"]).drop()
        url, pages = setup["url"], setup["pages"]
        plans = {name: explain(url, p) for name, p in pages.items()}
        without_trgm = {
            name: explain(url, p, no_bitmap=True)
            for name, p in pages.items()
            if "q" in p and "cursor" not in p
        }
        rare = pages["q=<one name> (1 row), first page"]["q"]
        out["sizes"][str(rows)] = {
            "one_condition_probe": one_condition_probe(url, rare),
            "load_seconds": round(setup["load"], 1),
            "matches": setup["counts"],
            "timings": {name: timings[(rows, name, "reuse")] for name in pages},
            "timings_per_invocation": {
                name: timings[(rows, name, "per_invocation")] for name in pages
            },
            "plans": plans,
            "plans_without_trigram_index": without_trgm,
        }
        if rows != max(row_counts):
            cluster.admin(f'DROP DATABASE "cities_scale_{rows}"')
    out["targets"] = scale_targets(out["sizes"])
    return out


def scale_targets(sizes: dict[str, Any]) -> dict[str, Any]:
    """A page may cost at most 2x at the biggest size, a deep page at most 1.5x the first."""
    targets: dict[str, Any] = {}
    keys = sorted(sizes, key=int)
    small, big = keys[0], keys[-1]
    for name, t in sizes[big]["timings"].items():
        if small != big and name in sizes[small]["timings"]:
            ratio = t["median"] / sizes[small]["timings"][name]["median"]
            targets[f"{name}: {int(big):,} vs {int(small):,} rows (<= 2x)"] = target(ratio, 2.0)
    per_invocation = [
        (t["median"] / sizes[small]["timings_per_invocation"][name]["median"], name)
        for name, t in sizes[big].get("timings_per_invocation", {}).items()
        if small != big and name in sizes[small].get("timings_per_invocation", {})
    ]
    if per_invocation:
        worst, page = max(per_invocation)
        label = f"worst page with a connection per invocation ({page}): {int(big):,} vs "
        targets[f"{label}{int(small):,} rows (<= 2x)"] = target(worst, 2.0)
    for name, t in sizes[big]["timings"].items():
        if name.endswith(", deep page (90%)"):
            label = name.removesuffix(", deep page (90%)")
            first = sizes[big]["timings"][f"{label}, first page"]["median"]
            targets[f"{label}: deep vs first page at {int(big):,} rows (<= 1.5x)"] = target(
                t["median"] / first, 1.5
            )
    return targets
