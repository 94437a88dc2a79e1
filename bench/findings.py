"""Plain-language findings computed from a run: what each figure means, and why a miss missed.

Every sentence is built from the measured values of this run, so it stays true when rerun; a
missed target is said to be missed, with the measured cause.
"""

from __future__ import annotations

from typing import Any


def _cold(c: dict[str, Any]) -> list[str]:
    names = list(c["cpu"])
    ours, floor, peer = (c["cpu"][n] for n in names)
    top = ", ".join(f"{n} {ms:.0f} ms" for n, ms in c["importtime"]["packages"][:6])
    own = (f"the project's own code (`cities`, and `handler` with `create_app`) accounts for "
           f"about {c['importtime']['project_ms']:.0f} ms")
    notes = [
        f"Cold init: `import handler` takes {ours['median']:.0f} ms of CPU (median; IQR "
        f"{ours['q1']:.0f}-{ours['q3']:.0f}) against {floor['median']:.0f} ms for the one-route "
        f"floor (IQR {floor['q1']:.0f}-{floor['q3']:.0f}): "
        f"{ours['median'] / floor['median']:.2f}x. Almost all of it is the stack the floor "
        f"imports too (top self times: {top}); {own} in `-X importtime`. URL builders compile "
        "lazily and "
        "the unused `/static` route is gone (about 1 ms per route saved at init)."
    ]
    peer_top = ", ".join(f"{n} {ms:.0f} ms" for n, ms in c["importtime_peer"]["packages"][:5])
    notes.append(
        f"The FastAPI + Mangum peer needs {peer['median']:.0f} ms, so cities costs "
        f"{ours['median'] / peer['median']:.2f}x of it: FastAPI, pydantic and starlette come on "
        f"top of a comparable base (the peer's top self times: {peer_top})."
    )
    for name, t in c["targets"].items():
        if not t["met"]:
            notes.append(
                f"MISSED {name}: {t['value']} against {t['limit']}. The contenders' interquartile "
                "ranges overlap on this shared machine; rerun with more BENCH_COLD_RUNS before "
                "reading a few percent either way."
            )
    return notes


def _request(r: dict[str, Any]) -> list[str]:
    t = r["timings"]
    floor = t["floor: connect + SELECT + close"]["median"]
    warm = t["warm floor: SELECT on an open connection"]["median"]
    get, reuse, peer = (t[f"GET {k}"]["median"] for k in ("cities", "cities reuse", "FastAPI peer"))
    one_route = t["GET one-route Flask app, same work"]["median"]
    notes = [
        f"A connection per request: the floor (psycopg2 connect + the SELECT + close) takes "
        f"{floor:.2f} ms here, of which the SELECT itself on an open connection is {warm:.2f} ms: "
        f"connecting (TCP + SCRAM, which includes the client's 4096-round PBKDF2) is the cost. "
        f"`GET /cities/{{id}}` through `handler.api` takes {get:.2f} ms ({get / floor:.2f}x), "
        f"the FastAPI peer {peer:.2f} ms ({peer / floor:.2f}x).",
        f"Flask and serverless-wsgi alone account for most of the difference: a one-route Flask "
        f"app doing the floor's work (connect, SELECT, close, JSON) takes {one_route:.2f} ms "
        f"({one_route / floor:.2f}x). The project's routing, validation, connection handling, "
        f"security headers and request log cost {get - one_route:+.2f} ms beyond it (its "
        "connection saves a round trip: the statement timeout travels with the query, and the "
        "read's implicit transaction ends with it, leaving the connection idle).",
        f"With `DB_CONNECTION_REUSE=1` the same GET takes {reuse:.2f} ms ({reuse / floor:.2f}x "
        f"the per-invocation floor): no connect. What remains is the app (event to WSGI to Flask "
        f"to JSON, about {max(reuse - warm, 0):.2f} ms above the warm floor) and the read itself, "
        "one round trip as on a new connection (`SET LOCAL statement_timeout; SELECT`). Against a "
        "hosted database, with TLS and network round trips, connecting costs more, so the gain "
        "is larger there.",
    ]
    target = r["targets"]["GET /cities/{id} vs floor (<= 1.10x)"]
    if not target["met"]:
        notes.append(
            f"MISSED GET vs floor: {target['value']}x. A one-route Flask app doing the same work "
            f"measures {one_route / floor:.3f}x in this run: the limit is close to what Flask and "
            f"serverless-wsgi alone cost over a local {floor:.1f} ms connect (against a hosted "
            "database, connecting takes several times longer and the same work is a few "
            "percent of it). The quartiles "
            f"({t['GET cities']['q1']:.2f}-{t['GET cities']['q3']:.2f} vs "
            f"{t['floor: connect + SELECT + close']['q1']:.2f}-"
            f"{t['floor: connect + SELECT + close']['q3']:.2f} ms) show how noisy this machine is."
        )
    with_metrics = t["GET cities reuse, METRICS on"]["median"]
    notes.append(
        f"The per-request CloudWatch EMF record (`METRICS=on`, as on Lambda) changes the warm GET "
        f"by {(with_metrics - reuse) * 1000:+.0f} µs ({with_metrics:.2f} vs {reuse:.2f} ms, "
        "medians of the same run): one dict encoded and one write to stdout, within this "
        "machine's noise."
    )
    return notes


def _scale(s: dict[str, Any]) -> list[str]:
    sizes = sorted(s["sizes"], key=int)
    big = s["sizes"][sizes[-1]]
    small = s["sizes"][sizes[0]]
    seq = [name for name, p in big["plans"].items() if p["seq_scan"]]
    notes = []
    if seq:
        notes.append(f"Sequential scans at {int(sizes[-1]):,} rows in: {', '.join(seq)}.")
    else:
        notes.append(
            f"No plan at {int(sizes[-1]):,} rows uses a sequential scan ({len(big['plans'])} "
            "pages): id, name and state pages walk their b-tree from the cursor."
        )
    common = [n for n in big["plans"] if n.startswith("q=oakhaven")]
    rare = [n for n in big["plans"] if n.startswith("q=<one name>")]
    if common:
        for page in common:
            nodes = big["plans"][page]["nodes"]
            plan = " > ".join(nodes)
            if any("trgm" in node for node in nodes):
                how = (
                    "the trigram index finds every match, then they are sorted: the cost grows "
                    "with the number of matching rows, not with the table"
                )
            elif any(node.startswith("Seq Scan") for node in nodes):
                how = "the whole table is read: the cost grows with the table"
            else:
                how = (
                    "PostgreSQL walks the sort order and filters, reading about "
                    "limit / selectivity rows (100 / 1% = 10,000) whatever the table size"
                )
            notes.append(f"How q scales: `{page}` is served by `{plan}`: {how}.")
    if rare:
        p_big, p_small = big["plans"][rare[0]], small["plans"].get(rare[0])
        uses_trgm = any("trgm" in node for node in p_big["nodes"])
        how = (
            "the trigram index (migrations 0003 and 0004, created because this server has "
            "pg_trgm)"
            if uses_trgm
            else "a scan, as pg_trgm is not available here"
        )
        small_ms = f"{p_small['execution_ms']:.2f} ms" if p_small else "-"
        without = big.get("plans_without_trigram_index", {}).get(rare[0])
        compare = (
            f" Planned without bitmap scans, as on a server without pg_trgm, the same page "
            f"reads the whole table: "
            f"{without['execution_ms']:.1f} ms ({' > '.join(without['nodes'])})."
            if without
            else ""
        )
        probe = big.get("one_condition_probe")
        one = (
            f" As one LIKE condition (how q searched before it went word by word) the same page "
            f"reads {probe['pages_read']:,} pages ({probe['execution_ms']:.2f} ms): for one "
            "condition GIN reads the posting list of every trigram of the term as far as the "
            "rarest one reaches, and the lists of the common first word (in 1% of the names) "
            "and of word-edge trigrams (such as ' ba') grow with the table."
            if probe
            else ""
        )
        pages = f", {p_big['pages_read']:,} pages" if "pages_read" in p_big else ""
        notes.append(
            f"A rare term (one matching row; a full name of two words) is found through {how}, "
            "word by word: its two rarest words are index conditions, rarest first as "
            "name_lower's statistics tell, and the term itself is checked on the rows they find "
            f"(`city_filters._q_conditions`). Server time {p_big['execution_ms']:.2f} ms{pages} at "
            f"{int(sizes[-1]):,} rows vs {small_ms} at {int(sizes[0]):,}."
            + one
            + compare
        )
    for name, t in s["targets"].items():
        if not t["met"]:
            page = name.split(": ")[0]
            plan = big["plans"].get(page) or next(
                (p for k, p in big["plans"].items() if k.startswith(page)), None
            )
            shown = " > ".join(plan["nodes"]) if plan else "?"
            why = ""
            if page.startswith("q=oakhaven"):
                why = _common_term_why(page, small, big, sizes)
            elif page.startswith("q=<one name>"):
                why = (
                    " Why: the term's common word is still an index condition, consulted at the "
                    "rare word's matches; its posting lists grow with the table (see above)."
                )
            notes.append(
                f"MISSED {name}: {t['value']}x (limit {t['limit']}x); plan at "
                f"{int(sizes[-1]):,} rows: {shown}.{why}"
            )
    return notes


def _memory(m: dict[str, Any]) -> list[str]:
    notes = []
    for mode, r in m["modes"].items():
        steps = sorted(r["steps"], key=int)
        growth = r["steps"][steps[-1]] - r["steps"][steps[0]]
        notes.append(
            f"Memory ({mode}): {r['after_import']:.1f} MiB after import, "
            f"{r['steps'][steps[0]]:.1f} MiB after {steps[0]} requests, "
            f"{r['steps'][steps[-1]]:.1f} MiB after {steps[-1]} ({growth:+.1f} MiB); peak "
            f"{r['peak']:.1f} MiB, against a 128 MB function."
        )
    for name, t in m["targets"].items():
        if not t["met"]:
            notes.append(f"MISSED {name}: {t['value']} (limit {t['limit']}).")
    return notes


def _fanin(f: dict[str, Any]) -> list[str]:
    m = f["modes"]
    direct = m["connection per request, direct"]
    pooled = m["connection per request, through PgBouncer"]
    reuse = m["reuse, through PgBouncer"]
    requests = f["processes"] * f["requests_per_process"]
    notes = [
        f"Fan-in ({f['processes']} processes at once, {requests} reads per run): a connection "
        f"per request straight to PostgreSQL costs the server "
        f"{direct['server_cpu_ms_per_1000']:.0f} ms of CPU per 1000 requests and "
        f"{direct['sessions_per_run']:.0f} new backends per run (one "
        f"fork and SCRAM login each). Through PgBouncer in transaction mode the same requests cost "
        f"it {pooled['server_cpu_ms_per_1000']:.0f} ms and {pooled['sessions_per_run']:.0f} "
        f"backends per run (pool size {f['pool_size']}): each request leaves its connection idle, "
        f"so the pooler lends the same backends again. Reuse through the pooler costs the server "
        f"{reuse['server_cpu_ms_per_1000']:.0f} ms ({reuse['sessions_per_run']:.0f} backends). "
        f"The logins move to PgBouncer: {pooled['pooler_cpu_ms_per_1000']:.0f} ms of its CPU per "
        f"1000 requests with a connection per request, {reuse['pooler_cpu_ms_per_1000']:.0f} ms "
        "with reuse. It keeps the role's SCRAM verifier, as Neon's pooler does: with the plain "
        "password in its auth_file it would derive a verifier (4096 rounds of PBKDF2) on every "
        "login, which earlier runs of this bench counted as the cost of a connection per "
        "request (`bench_fanin(..., verifier=False)` measures that setup).",
        f"Server CPU with a connection per request through PgBouncer is "
        f"{pooled['server_cpu_ms_per_1000'] / reuse['server_cpu_ms_per_1000']:.2f}x that of reuse "
        "through it: the same backends serve both; what a new client connection costs is paid "
        "by the pooler and the client, not by PostgreSQL.",
    ]
    errors = {name: mode["errors"] for name, mode in m.items() if mode["errors"]}
    if errors:
        notes.append(f"Fan-in requests that failed (status other than 200): {errors}.")
    for name, t in f["targets"].items():
        if not t["met"]:
            notes.append(
                f"MISSED {name}: {t['value']} (limit {t['limit']}). Server CPU is counted in "
                "10 ms ticks; the figures per 1000 requests rest on a few hundred ticks per mode."
            )
    return notes


def _cold_parts(parts: dict[str, Any], whole: int | None) -> list[str]:
    sub, tokens = parts["subpackages"], parts["jwt"]
    share = f" ({100 * sub['project'] / whole:.1f}% of `import handler`)" if whole else ""
    biggest = max(sub["instructions"].items(), key=lambda item: item[1])
    notes = [
        f"The project's own import is {sub['project'] / 1e6:.1f}M instructions{share}; the "
        f"largest part is `{biggest[0]}` ({biggest[1] / 1e6:.1f}M). Everything else "
        "`import handler` executes is the interpreter, Flask, Werkzeug, psycopg2 and the standard "
        "library."
    ]
    diff = tokens["import_handler_with_oidc"] / tokens["import_handler"] - 1
    notes.append(
        f"Bearer tokens: configuring an issuer changes `import handler` by {diff:+.2%} of its "
        f"instructions, and PyJWT is {'' if tokens['verifier_imported_at_init'] else 'not '}"
        f"imported at init. The first token a container verifies costs "
        f"{tokens['first_token'] / 1e6:.0f}M instructions, {tokens['lazy_imports'] / 1e6:.0f}M "
        f"of them importing PyJWT and cryptography ("
        f"{tokens['lazy_imports'] / tokens['import_handler']:.0%} of a cold import, paid only by "
        f"a container that sees a token); each next token {tokens['next_token'] / 1e6:.1f}M."
    )
    return notes


def _framework_share(name: str, one: dict[str, Any]) -> str:
    """What of the API's time over the floor, at 1 ms, is Flask and serverless-wsgi's."""
    over = one["app"]["median"] - one["floor_ms"]
    framework = one["framework"]["median"] - one["floor_ms"]
    said = (f"On the same path ({name}), a one-route Flask app behind serverless-wsgi doing the "
            f"same SELECT takes {one['framework']['median']:.2f} ms ({one['framework_ratio']}x "
            "the floor)")
    if framework >= over:
        return (f"{said}: more than the API, whose read is sent before Flask runs "
                "(cities/http/early_read.py), so Flask's own set-up overlaps the round trip.")
    return (f"{said}: the framework alone is {framework / over:.0%} of the API's {over:.2f} ms "
            "over the floor; the project's routing, checks, connection care, ETag and headers "
            "the rest.")


# Round trips of a new TLS connection with the classic negotiation: TCP, SSLRequest, TLS 1.3,
# startup + two SCRAM legs, the query (`sslnegotiation=direct` saves the SSLRequest).
NEW_CONNECTION_ROUND_TRIPS = 7


def _latency(lat: dict[str, Any]) -> list[str]:
    notes = []
    for name, by_rtt in lat["paths"].items():
        zero = by_rtt["0"]
        own_cpu = zero["app"]["median"] - zero["psycopg2"]["median"]
        for rtt, row in by_rtt.items():
            if rtt == "0":
                continue
            app_trips, raw_trips = row["app"]["round_trips"], row["psycopg2"]["round_trips"]
            plural = "" if round(app_trips) == 1 else "s"
            trips = (f"the same {app_trips:g} round trip{plural} as psycopg2 alone"
                     if round(app_trips) == round(raw_trips)
                     else f"{app_trips:g} round trips against psycopg2's {raw_trips:g}")
            notes.append(
                f"Latency, {name}, {rtt} ms RTT: {row['app']['median']:.2f} ms against a floor of "
                f"{row['floor_ms']:.2f} ms ({row['ratio']}x), {trips}.")
        limit = lat["targets"][f"{name} at 1 ms RTT vs its floor (<= "
                               f"{1.2 if 'kept' in name else 1.1}x)"]
        one = by_rtt["1"]
        same = round(one["app"]["round_trips"]) == round(one["psycopg2"]["round_trips"])
        if not limit["met"] and same:
            floor = one["floor_ms"]
            notes.append(
                f"MISSED {name} at 1 ms: the API's own CPU on this path (its median at no added "
                f"RTT minus psycopg2's: {own_cpu:.2f} ms, Flask, serverless-wsgi and the project) "
                f"is more than the {limit['limit'] - 1:.0%} of a {floor:.2f} ms floor the target "
                "allows; the round trips are the floor's, so only CPU could close the gap, and it "
                "shrinks against the floor as the RTT grows (see 20 ms).")
            if "framework" in one:
                notes.append(_framework_share(name, one))
    direct = lat["paths"].get("new TLS connection, direct", {}).get("20")
    negotiated = lat.get("negotiation_round_trips")
    if direct and round(direct["psycopg2"]["round_trips"]) > NEW_CONNECTION_ROUND_TRIPS:
        notes.append(
            f"A new TLS connection straight to this PostgreSQL takes "
            f"{direct['psycopg2']['round_trips']:g} round trips, one more than the "
            f"{NEW_CONNECTION_ROUND_TRIPS} of the protocol, for psycopg2 alone as for the API: "
            "PostgreSQL before 18 offers TLS 1.3 one key-exchange group (`ssl_ecdh_curve`, "
            "prime256v1; it names an elliptic curve, so X25519 is refused at start) while the "
            "bundled libpq's OpenSSL sends an X25519 key share first, so the server answers the "
            "ClientHello with a HelloRetryRequest. PgBouncer (OpenSSL's default groups) and "
            "PostgreSQL 18 (`ssl_groups`) do not; through PgBouncer the count is the protocol's. "
            "`sslnegotiation=direct` (PostgreSQL 17+, Neon) saves one more"
            + (": see the next finding." if negotiated else ", which no server here offers."))
    path = lat["paths"].get("new TLS connection, direct negotiation", {}).get("20")
    if negotiated and path:
        classic, at_once = negotiated["postgres"], negotiated["direct"]
        faster = (f", {direct['app']['median'] - path['app']['median']:.1f} ms less than "
                  "`new TLS connection, direct` (the classic negotiation) at 20 ms RTT"
                  if direct else "")
        notes.append(
            f"Direct TLS negotiation (`sslnegotiation=direct`, against PostgreSQL {lat['pg17']}) "
            "saves "
            f"the SSLRequest's round trip: a new connection and its query take {classic:g} round "
            f"trips with the classic negotiation and {at_once:g} with the direct one, to the same "
            f"server (psycopg2 alone, counted); the API takes "
            f"{path['app']['round_trips']:g} on that path{faster}. That server still answers "
            "libpq's X25519 key share with a HelloRetryRequest (its `ssl_ecdh_curve` as above)"
            + _without_retry(negotiated))
    elif "direct_negotiation_skipped" in lat:
        notes.append(f"Direct TLS negotiation was not measured: {lat['direct_negotiation_skipped']}"
                     " (`make trixie-postgres` fetches Debian trixie's PostgreSQL 17).")
    return notes


def _without_retry(negotiated: dict[str, float]) -> str:
    """The counts with the client offering the server's group first, where they were taken."""
    classic = negotiated.get("postgres_server_group_first")
    if classic is None:
        return "."
    return (f"; with the client offering that group first (OPENSSL_CONF, bench/latency.py: what "
            "a server taking X25519, such as Neon's proxy, needs no setting for), the same "
            f"connection takes {classic:g} round trips with the classic negotiation and "
            f"{negotiated['direct_server_group_first']:g} with the direct one: the protocol's "
            f"{NEW_CONNECTION_ROUND_TRIPS} and {NEW_CONNECTION_ROUND_TRIPS - 1}, the physical "
            "floor of a new connection.")


def _common_term_why(page: str, small: dict[str, Any], big: dict[str, Any],
                     sizes: list[str]) -> str:
    """Why a page of the 1% term misses the 2x scale target: its server time, and the part
    of the page that does not grow with the table."""
    first = page if page in small["plans"] else next(
        (n for n in small["plans"] if n.startswith(page.split(", ")[0])), page)
    server = [size["plans"].get(first, {}).get("execution_ms") for size in (small, big)]
    whole = small["timings"].get(first, {}).get("median")
    if None in server or whole is None:
        return ""
    return (
        f" Why: at {int(sizes[0]):,} rows the 1% term matches only "
        f"{small['matches'].get(page.split(', ')[0], '?'):,} rows, all found at once through "
        f"the trigram index ({server[0]:.2f} ms of server time); at {int(sizes[-1]):,} no index "
        "returns substring matches in the page's order, so the page examines about limit / "
        f"selectivity rows, 10,000 ({server[1]:.2f} ms, {server[1] / server[0]:.1f}x). That "
        "bound does not grow further with the table (migration 0004 halved its cost per row: "
        "the name is stored lowercased). The rest of the page does not grow at all: the API's "
        f"own work, about {whole - server[0]:.2f} ms (the page's {whole:.2f} ms at "
        f"{int(sizes[0]):,} rows less its server time), and the smaller it gets, the closer the "
        "whole page's ratio comes to the server's."
    )


def findings(results: dict[str, Any]) -> list[str]:
    notes: list[str] = []
    if "cold" in results:
        notes += _cold(results["cold"])
        if "parts" in results["cold"]:
            whole = results["cold"].get("instructions", {}).get("cities (import handler)")
            notes += _cold_parts(results["cold"]["parts"], whole)
    if "request" in results:
        notes += _request(results["request"])
    if "scale" in results:
        notes += _scale(results["scale"])
    if "memory" in results:
        notes += _memory(results["memory"])
    if results.get("fanin", {}).get("modes"):
        notes += _fanin(results["fanin"])
    if results.get("latency", {}).get("paths"):
        notes += _latency(results["latency"])
    art = results.get("artifact")
    if art and "skipped" in art:
        notes.append(
            f"Artifact cold start was not measured: {art['skipped']}. With a zip present, "
            "`make bench` imports `handler` from it on the runtime's Python with `-B -I -S`, "
            "against a one-route app in the same zip and the same zip without bytecode."
        )
    elif art:
        c = art["cpu"]
        ours, floor, usual = (c[n]["median"] for n in c)
        notes.append(
            f"Artifact: from the unpacked `{art['artifact']}` ({art['zipped_mib']} MiB zipped), "
            f"`import handler` costs {ours:.0f} ms of CPU on Python {art['runtime_python']}, "
            f"{ours / floor:.2f}x the one-route app packaged the same way ({floor:.0f} ms) and "
            f"{ours / usual:.2f}x the same files without the runtime's bytecode ({usual:.0f} ms, "
            "what a plugin that compiles with the build machine's Python ships: the runtime "
            "compiles every module on every cold start). Size costs nothing measurable here: "
            "only what is imported is read."
        )
        for name, t in art["targets"].items():
            if not t["met"]:
                notes.append(f"MISSED {name}: {t['value']} (limit {t['limit']}).")
    return notes
