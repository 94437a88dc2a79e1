"""Turn one benchmark run into the printed table, docs/benchmarks.md, .json and a PNG chart.

Everything in the report is computed from the run's results: the verdict beside each target is
the comparison itself, so a missed target reads "MISSED" without anyone having to notice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DESIGN_MEASUREMENTS = Path(__file__).with_name("design_measurements.md")
METHOD = """\
- **One run, side by side.** Every contender of a section is measured in the same run, interleaved
  round-robin in a new random order each round, so background load on this shared 2-core machine
  falls on all of them alike. Figures are medians (with the interquartile range); targets are
  ratios against a floor measured in the same run, never absolute times.
- **Cold init**: a fresh interpreter per sample imports the module (`import handler` for this
  project) and reports the import's own time; bytecode was compiled beforehand, as in a deployed
  zip, and the working directory has no `.env` (as on Lambda). `-X importtime` is summed per
  top-level package (self time, median of 5 runs).
- **Per request**: `handler.api` is called with API Gateway HTTP API (v2) events from
  `tests/support/lambda_events.py`, in process, against a throwaway PostgreSQL cluster started
  for the run (initdb, 127.0.0.1 on a free port, `password_encryption=scram-sha-256`,
  `scram-sha-256` in pg_hba for TCP), so every connection pays TCP + SCRAM like a hosted database
  (without TLS and network latency, which would only make connecting, and so the reuse gain,
  larger). The floor is raw psycopg2: connect, the same SELECT, close. Every reply's status is
  checked. The bench process has no log handler, as a local run: each request's JSON log line is
  built (record, filter, encoding) but not written; on Lambda the runtime's handler also writes it.
- **Scale**: the same list queries through `handler.api` on tables of 10k and 1M generated rows
  (names are a word and a made-up second word, like `Oakhaven Bakotu`; one in 100 is an Oakhaven),
  each page timed twice: with `DB_CONNECTION_REUSE` on, so the figure is the query and the app, not
  the connect (the strict view, which the per-page targets use), and with a connection per
  invocation (the default deployment: what a caller waits, connect included). Tables are built with
  `generate_series`, then `VACUUM ANALYZE`, one database per size; every page of every size, in
  both modes, is timed in the same interleaved run. The deep page is reached with the cursor the
  API issues after the row at 90% of the matching rows (or earlier, when fewer than a full page of
  100 rows would follow, so both sizes compare full pages). Plans are `EXPLAIN (ANALYZE)` of the
  exact SQL the API sent, captured from the driver.
- **Memory**: a fresh process serves warm `GET /cities/{id}` (a list every tenth request) and
  reports VmRSS after each step and VmHWM (peak), after `gc.collect()`.
- **Fan-in** (`bench/fanin.py`): N worker processes stand in for N warm Lambda containers; each
  imports the handler, waits for a common start, then serves its reads in process
  (`GET /cities/{id}`, a 20-row list every fifth). Three deployments, each run once per round in
  a new random order: a connection per request straight to PostgreSQL, a connection per request
  through PgBouncer (Debian's, `pool_mode = transaction`, pool size 10, SCRAM: Neon's `-pooler`
  endpoint), and `DB_CONNECTION_REUSE=1` through the same pooler. PgBouncer restarts before every
  run, so each pays for filling its pool. Server CPU is the postmaster's, its live backends' and
  its reaped backends' user + system time (`/proc`, 10 ms ticks) over the run, on a cluster of its
  own that logs connections; server sessions are its `connection authorized` lines.
- **TLS connect** (`python -m bench.tls_connect`): a throwaway SSL-capable PostgreSQL with a
  certificate from a CA made for the run; each CA file has that CA appended so both verify the
  same server. Instructions of N connects minus those of none, in a process of their own.
"""


def _ms(t: dict[str, float]) -> str:
    return f"{t['median']:.2f} ms"


def _iqr(t: dict[str, float]) -> str:
    return f"{t['q1']:.2f}-{t['q3']:.2f}"


def _verdict(t: dict[str, Any]) -> str:
    return "met" if t["met"] else "**MISSED**"


def _targets_rows(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    for section in ("cold", "request", "scale", "artifact", "memory", "fanin"):
        for name, t in (results.get(section) or {}).get("targets", {}).items():
            rows.append((name, t))
    return rows


def render_text(results: dict[str, Any]) -> str:
    lines = ["", "target".ljust(78) + "value".rjust(10) + "  limit   verdict"]
    for name, t in _targets_rows(results):
        verdict = "met" if t["met"] else "MISSED"
        lines.append(f"{name[:78]:78}{t['value']:>10}  {t['limit']:<7} {verdict}")
    if "request" in results:
        lines.append("")
        lines.append("per request".ljust(60) + "median ms".rjust(10) + "  x floor")
        for name, t in results["request"]["timings"].items():
            ratio = results["request"]["ratios"][name]
            lines.append(f"{name:60}{t['median']:>10.2f}  {ratio:.2f}")
    if "cold" in results:
        lines.append("")
        for name, t in results["cold"]["cpu"].items():
            lines.append(f"cold import CPU  {name:56}{t['median']:>8.1f} ms")
    art = results.get("artifact")
    if art and "skipped" in art:
        lines.append(f"\nartifact: skipped: {art['skipped']}")
    fan = results.get("fanin")
    if fan and "modes" in fan:
        lines.append("")
        lines.append("fan-in".ljust(46) + "server CPU/1000  sessions/run  pooler CPU/1000  req/s")
        for name, m in fan["modes"].items():
            lines.append(
                f"{name:46}{m['server_cpu_ms_per_1000']:>12.0f} ms{m['sessions_per_run']:>14}"
                f"{m['pooler_cpu_ms_per_1000']:>14.0f} ms{m['requests_per_second']:>7}"
            )
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> bool:
    """Latency per operation: this project vs floor vs peer (and reuse), plus cold init."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = [p for p in ("request", "cold") if p in results]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5.2), squeeze=False)
    colors = {"cities": "#1f77b4", "cities reuse": "#2ca02c", "FastAPI peer": "#ff7f0e"}
    ax_i = 0
    if "request" in results:
        ax = axes[0][ax_i]
        ax_i += 1
        t = results["request"]["timings"]
        kinds = ["GET", "POST", "PUT", "LIST"]
        width = 0.2
        for i, label in enumerate(colors):
            values = [t[f"{k} {label}"]["median"] for k in kinds]
            xs = [k + (i - 1) * width for k in range(len(kinds))]
            ax.bar(xs, values, width, label=label, color=colors[label])
        floor = t["floor: connect + SELECT + close"]["median"]
        ax.axhline(floor, color="black", linestyle="--", linewidth=1,
                   label="floor: psycopg2 connect + SELECT + close")  # fmt: skip
        ax.set_xticks(range(len(kinds)), ["GET /cities/{id}", "POST", "PUT", "GET /cities"])
        ax.set_ylabel("median latency per request (ms)")
        ax.set_title("Per request, TCP + SCRAM to local PostgreSQL")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    if "cold" in results:
        ax = axes[0][ax_i]
        c = results["cold"]["cpu"]
        names = list(c)
        short = ["cities\n(import handler)", "floor\n(one-route Flask)", "FastAPI\n+ Mangum"]
        ax.bar(short[: len(names)], [c[n]["median"] for n in names],
               color=["#1f77b4", "#7f7f7f", "#ff7f0e"])  # fmt: skip
        ax.set_ylabel("median import CPU time, fresh interpreter (ms)")
        ax.set_title("Cold init")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def render_markdown(results: dict[str, Any], png: str | None) -> str:
    m = results["machine"]
    out = ["# Benchmarks", ""]
    out.append(
        "Generated by `make bench` (`python -m bench`); do not edit by hand, rerun it. "
        "Figures are from one run on the machine below; see Method."
    )
    out += ["", "## Machine", ""]
    out.append(f"- CPU: {m['cpu']}, {m['cores']} cores (shared with other work: noisy)")
    out.append(f"- Python {m['python']} on {m['os']}")
    if "postgres" in m:
        out.append(
            f"- PostgreSQL {m['postgres']} (throwaway cluster, TCP + SCRAM), psycopg2 "
            f"{m['psycopg2']}, pg_trgm available: {m['pg_trgm_available']}; migrations "
            f"applied: {', '.join(m.get('migrations', []))}"
        )
    out.append(
        f"- Load average at start {m['load_average_start']}, at end "
        f"{m['load_average_end']}; the run took {m['duration_seconds']} s"
    )
    out.append(f"- Knobs: `{json.dumps(results['knobs'])}`")

    out += ["", "## Targets", "", "| target | measured | limit | verdict |", "|---|---|---|---|"]
    for name, t in _targets_rows(results):
        out.append(f"| {name} | {t['value']} | {t['limit']} | {_verdict(t)} |")
    if png:
        out += ["", f"![latency per operation]({png})"]

    if "cold" in results:
        c = results["cold"]
        out += ["", "## 1. Cold init", ""]
        out += [
            "| contender | import CPU (median) | IQR | import wall (median) | IQR "
            "| whole process wall |",
            "|---|---|---|---|---|---|",
        ]
        for name, t in c["cpu"].items():
            w = c["import"][name]
            out.append(
                f"| {name} | {_ms(t)} | {_iqr(t)} | {_ms(w)} | {_iqr(w)} "
                f"| {_ms(c['process'][name])} |"
            )
        out += [
            "",
            f"Wall-clock ratios of the same runs: {c['wall_ratios']['vs floor']}x the floor, "
            f"{c['wall_ratios']['vs peer']}x the FastAPI peer.",
        ]
        if "instructions" in c:
            counts = ", ".join(f"{name}: {n / 1e6:.0f}M" for name, n in c["instructions"].items())
            out += [
                "",
                f"Instructions executed by the import (callgrind, beyond a bare interpreter "
                f"start; the same count run after run, whatever the machine's load): {counts}. "
                f"Ratios: {c['instruction_ratios']['vs floor']}x the floor, "
                f"{c['instruction_ratios']['vs peer']}x the FastAPI peer.",
            ]
        out += ["", "`-X importtime` of `import handler`, self time per top-level package:", ""]
        floor = dict(c["importtime_floor"]["packages"])
        out += ["| package | handler (ms) | floor (ms) |", "|---|---|---|"]
        for name, ms in c["importtime"]["packages"]:
            out.append(f"| `{name}` | {ms} | {floor.get(name, '-')} |")
        out += ["", "Largest single modules (self time):", ""]
        out.append(", ".join(f"`{n}` {ms} ms" for n, ms in c["importtime"]["modules"][:10]))

    if "request" in results:
        r = results["request"]
        out += ["", "## 2. Per request", ""]
        out += ["| operation | median | IQR (ms) | x floor |", "|---|---|---|---|"]
        for name, t in r["timings"].items():
            out.append(f"| {name} | {_ms(t)} | {_iqr(t)} | {r['ratios'][name]} |")
        out.append("")
        out.append(
            "`cities` is the default (a connection per request); `cities reuse` is "
            "`DB_CONNECTION_REUSE=1` (one kept connection, checked before use); `LIST` is "
            "`GET /cities?limit=100`. The one-route Flask app does the floor's work behind "
            "serverless-wsgi and nothing of the project's: the framework's own share."
        )

    if "scale" in results:
        s = results["scale"]
        out += ["", "## 3. Scale", ""]
        sizes = sorted(s["sizes"], key=int)
        head = " | ".join(f"{int(n):,} rows" for n in sizes)
        per_inv = " | ".join(f"{int(n):,} rows, per invocation" for n in sizes)
        out += [f"| page | {head} | {per_inv} | plan at {int(sizes[-1]):,} rows |"]
        out += ["|---|" + "---|" * 2 * len(sizes) + "---|"]
        big = s["sizes"][sizes[-1]]
        for name in big["timings"]:
            cells = []
            for key in ("timings", "timings_per_invocation"):
                for n in sizes:
                    t = s["sizes"][n].get(key, {}).get(name)
                    cells.append(_ms(t) if t else "-")
            plan = big["plans"][name]
            shown = " > ".join(plan["nodes"])
            flag = " (seq scan)" if plan["seq_scan"] else ""
            out.append(f"| {name} | {' | '.join(cells)} | {shown}{flag} |")
        out += ["", "Rows matching each filter and load time:", ""]
        for n in sizes:
            matches = ", ".join(f"{k}: {v:,}" for k, v in s["sizes"][n]["matches"].items())
            loaded = s["sizes"][n]["load_seconds"]
            out.append(f"- {int(n):,} rows (loaded in {loaded} s): {matches}")
        out += ["", "Server-side execution time (EXPLAIN ANALYZE), ms:", ""]
        out += ["| page | " + " | ".join(f"{int(n):,}" for n in sizes) + " |"]
        out += ["|---|" + "---|" * len(sizes)]
        for name in big["timings"]:
            cells = []
            for n in sizes:
                plan = s["sizes"][n]["plans"].get(name)
                cells.append(f"{plan['execution_ms']:.3f}" if plan else "-")
            out.append(f"| {name} | {' | '.join(cells)} |")

    art = results.get("artifact")
    out += ["", "## 4. Artifact cold start", ""]
    if not art:
        out.append("Not run (section not selected).")
    elif "skipped" in art:
        out.append(f"Skipped: {art['skipped']}.")
    else:
        out.append(
            f"`{art['artifact']}`: {art['zipped_mib']} MiB zipped, {art['unpacked_mib']} MiB "
            f"unpacked (Lambda allows 50 MiB zipped, 250 MiB unpacked). `import handler` from "
            f"the unpacked zip alone on Python {art['runtime_python']} with `-B -I -S`:"
        )
        out += [
            "",
            "| contender | import CPU (median) | IQR | import wall (median) | IQR |",
            "|---|---|---|---|---|",
        ]
        for name, t in art["cpu"].items():
            w = art["wall"][name]
            out.append(f"| {name} | {_ms(t)} | {_iqr(t)} | {_ms(w)} | {_iqr(w)} |")

    if "memory" in results:
        mem = results["memory"]["modes"]
        out += ["", "## 5. Memory", ""]
        steps = sorted(next(iter(mem.values()))["steps"], key=int)
        out += [
            "| mode | after import | " + " | ".join(f"after {s} requests" for s in steps)
            + " | peak |"
        ]
        out += ["|---|---|" + "---|" * len(steps) + "---|"]
        for mode, r in mem.items():
            cells = " | ".join(f"{r['steps'][s]:.1f} MiB" for s in steps)
            out.append(f"| {mode} | {r['after_import']:.1f} MiB | {cells} | {r['peak']:.1f} MiB |")

    fan = results.get("fanin")
    if fan:
        out += ["", "## 6. Fan-in: many containers, directly and through PgBouncer", ""]
        if "skipped" in fan:
            out.append(f"Skipped: {fan['skipped']}.")
        else:
            out.append(
                f"{fan['processes']} concurrent processes x {fan['requests_per_process']} reads "
                f"each, {fan['rounds']} rounds; PgBouncer pool size {fan['pool_size']}."
            )
            out += [
                "",
                "| deployment | server CPU per 1000 requests | server sessions per run "
                "| PgBouncer CPU per 1000 requests | requests/s | errors |",
                "|---|---|---|---|---|---|",
            ]
            for name, m in fan["modes"].items():
                out.append(
                    f"| {name} | {m['server_cpu_ms_per_1000']:.0f} ms | {m['sessions_per_run']} "
                    f"| {m['pooler_cpu_ms_per_1000']:.0f} ms | {m['requests_per_second']} "
                    f"| {m['errors']} of {m['requests']} |"
                )

    out += _tls_section(results.get("tls"))
    if "runtime" in results:
        from bench.runtime import render as render_runtime

        out += render_runtime(results["runtime"])

    out += (results.get("quota") or {}).get("markdown", [])  # bench/quota.py renders its own
    notes = results.get("notes")
    if notes:
        out += ["", "## Findings", ""] + [f"- {n}" for n in notes]
    out += ["", "## Method", "", METHOD]
    # Figures the code's comments point to, taken once when a design was chosen (not re-run).
    out += ["", DESIGN_MEASUREMENTS.read_text().rstrip()]
    return "\n".join(out) + "\n"


def _tls_section(tls: dict[str, Any] | None) -> list[str]:
    """Client instructions per verified TLS connect, by the CA file libpq loads each time."""
    if not tls:
        return []
    out = ["", "## 7. TLS connect: the CA file", ""]
    if "skipped" in tls:
        return [*out, f"Skipped: {tls['skipped']}."]
    out += [
        "Client instructions (callgrind) per `connect()` with `sslmode=verify-full&"
        f"channel_binding=require` and SCRAM, mean of {tls['connects']} connects: libpq builds a "
        "new TLS context per connection and parses its whole CA file each time.",
        "",
        "| CA file | certificates | instructions per connect |",
        "|---|---|---|",
    ]
    for name in ("shipped roots", "system bundle"):
        row = tls[name]
        out.append(f"| {name} | {row['certificates']} | {row['instructions_m']}M |")
    ratio = tls["system bundle"]["instructions_m"] / tls["shipped roots"]["instructions_m"]
    out += ["", f"The system bundle (`{tls['bundle']}`, `sslrootcert=system`) costs {ratio:.2f}x "
            "the shipped roots (cities/db/certs/roots.pem, the default) per connect."]
    return out


def render(results: dict[str, Any], output: Path) -> str:
    """Write the report files; returns the text table for the terminal."""
    from bench.findings import findings

    output.parent.mkdir(parents=True, exist_ok=True)
    results["notes"] = findings(results)
    png_path = output.with_suffix(".png")
    png = png_path.name if chart(results, png_path) else None
    output.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    output.write_text(render_markdown(results, png))
    return render_text(results)
